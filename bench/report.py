"""The bench's results and how they are reported: per-round figures, the targets, the verdicts,
a plain-data summary (for ``--json``) and the printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness import Sample, median_index

CLAIM_RATIO_TARGET = 0.8  # claims/s >= 0.8 x raw SET NX PX ops/s
CLAIM_P99_TARGET_MS = 2.0
LIFECYCLE_RATIO_TARGET = 0.25  # items/s >= 0.25 x raw SET NX PX ops/s
GROWTH_RATIO_TARGET = 1.2  # claim p50 at 100k items <= 1.2 x at 1k


@dataclass
class Round:
    baseline_ops_s: float
    baseline_p50_ms: float
    baseline_p99_ms: float
    value: float  # the contender's rate (claims/s or items/s)
    p50_ms: float
    p99_ms: float
    mean_ms: float
    baseline_cpu_ms: float  # client CPU per baseline op
    cpu_ms: float  # client CPU per claim (or per lifecycle item)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_ops_s


@dataclass
class GrowthRound:
    small_p50_ms: float
    large_p50_ms: float
    small_mean_ms: float
    large_mean_ms: float

    @property
    def ratio(self) -> float:
        return self.large_p50_ms / self.small_p50_ms

    @property
    def mean_ratio(self) -> float:
        return self.large_mean_ms / self.small_mean_ms


@dataclass
class Results:
    redis_url: str
    redis_kind: str
    redis_version: str
    n: int
    rounds: int
    claim_rounds: list[Round] = field(default_factory=list)
    lifecycle_rounds: list[Round] = field(default_factory=list)
    floor_rounds: list[Round] = field(default_factory=list)
    bare_rounds: list[Round] = field(default_factory=list)
    growth_rounds: list[GrowthRound] = field(default_factory=list)
    growth_small: int = 0
    growth_large: int = 0
    growth_samples: int = 0
    fill_seconds: float = 0.0
    total_seconds: float = 0.0
    deleted_keys: int = 0


def round_of(base: Sample, ours: Sample) -> Round:
    return Round(
        baseline_ops_s=base.rate,
        baseline_p50_ms=base.percentile_ms(50),
        baseline_p99_ms=base.percentile_ms(99),
        value=ours.rate,
        p50_ms=ours.percentile_ms(50),
        p99_ms=ours.percentile_ms(99),
        mean_ms=ours.mean_ms,
        baseline_cpu_ms=base.cpu_per_unit_ms,
        cpu_ms=ours.cpu_per_unit_ms,
    )


# -- reporting ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary(results: Results) -> dict[str, Any]:
    """The median rounds, the targets and the verdicts, as plain data."""
    out: dict[str, Any] = {
        "redis": {"url": results.redis_url, "kind": results.redis_kind, "version": results.redis_version},
        "n": results.n,
        "rounds": results.rounds,
    }
    if results.claim_rounds:
        c = results.claim_rounds[median_index([x.ratio for x in results.claim_rounds])]
        out["baseline_set_nx_px"] = {
            "ops_s": c.baseline_ops_s,
            "p50_ms": c.baseline_p50_ms,
            "p99_ms": c.baseline_p99_ms,
            "client_cpu_ms": c.baseline_cpu_ms,
        }
        out["claim"] = {
            "claims_s": c.value,
            "p50_ms": c.p50_ms,
            "p99_ms": c.p99_ms,
            "mean_ms": c.mean_ms,
            "client_cpu_ms": c.cpu_ms,
            "baseline_ops_s": c.baseline_ops_s,
            "ratio": c.ratio,
            "ratio_target": CLAIM_RATIO_TARGET,
            "ratio_pass": c.ratio >= CLAIM_RATIO_TARGET,
            "p99_target_ms": CLAIM_P99_TARGET_MS,
            "p99_pass": c.p99_ms <= CLAIM_P99_TARGET_MS,
            "round_ratios": [x.ratio for x in results.claim_rounds],
            "round_p99_ms": [x.p99_ms for x in results.claim_rounds],
        }
    if results.lifecycle_rounds:
        lc = results.lifecycle_rounds[median_index([x.ratio for x in results.lifecycle_rounds])]
        out["lifecycle"] = {
            "items_s": lc.value,
            "item_p50_ms": lc.p50_ms,
            "item_p99_ms": lc.p99_ms,
            "client_cpu_ms_per_item": lc.cpu_ms,
            "baseline_ops_s": lc.baseline_ops_s,
            "ratio": lc.ratio,
            "ratio_target": LIFECYCLE_RATIO_TARGET,
            "ratio_pass": lc.ratio >= LIFECYCLE_RATIO_TARGET,
            "round_ratios": [x.ratio for x in results.lifecycle_rounds],
        }
    for name, found in (("floor", results.floor_rounds), ("bare_claim", results.bare_rounds)):
        if found:
            f = found[median_index([x.ratio for x in found])]
            out[name] = {
                "ops_s": f.value,
                "p50_ms": f.p50_ms,
                "ratio": f.ratio,
                "round_ratios": [x.ratio for x in found],
            }
    if results.growth_rounds:
        g = results.growth_rounds[median_index([x.ratio for x in results.growth_rounds])]
        out["growth"] = {
            "small_items": results.growth_small,
            "large_items": results.growth_large,
            "samples_per_size": results.growth_samples,
            "small_p50_ms": g.small_p50_ms,
            "large_p50_ms": g.large_p50_ms,
            "small_mean_ms": g.small_mean_ms,
            "large_mean_ms": g.large_mean_ms,
            "ratio": g.ratio,
            "mean_ratio": g.mean_ratio,
            "ratio_target": GROWTH_RATIO_TARGET,
            "ratio_pass": g.ratio <= GROWTH_RATIO_TARGET,
            "round_ratios": [x.ratio for x in results.growth_rounds],
            "round_mean_ratios": [x.mean_ratio for x in results.growth_rounds],
            "fill_seconds": results.fill_seconds,
        }
    out["total_seconds"] = results.total_seconds
    out["deleted_keys"] = results.deleted_keys
    out["raw_rounds"] = {
        "claim": [asdict(x) for x in results.claim_rounds],
        "lifecycle": [asdict(x) for x in results.lifecycle_rounds],
        "growth": [asdict(x) for x in results.growth_rounds],
    }
    return out


def table(s: dict[str, Any]) -> str:
    def us(ms: float) -> str:
        return f"{ms * 1000:,.0f} us"

    rows: list[tuple[str, str, str, str, str, str]] = []
    if "claim" in s:
        b, c = s["baseline_set_nx_px"], s["claim"]
        rows.append(("raw SET NX PX 30000 (baseline)", f"{b['ops_s']:,.0f} ops/s", "", "", "", ""))
        rows.append(
            ("  baseline latency p50 / p99", f"{us(b['p50_ms'])} / {us(b['p99_ms'])}", "", "", "", "")
        )
        rows.append(
            (
                "claim, one client, sequential",
                f"{c['claims_s']:,.0f} claims/s",
                f"{c['baseline_ops_s']:,.0f} ops/s",
                f"{c['ratio']:.2f}",
                f">= {CLAIM_RATIO_TARGET}",
                verdict(c["ratio_pass"]),
            )
        )
        rows.append(("  claim latency p50", us(c["p50_ms"]), us(b["p50_ms"]), "", "", ""))
        rows.append(
            (
                "  client CPU per claim",
                us(c["client_cpu_ms"]),
                us(b["client_cpu_ms"]),
                f"{c['client_cpu_ms'] / b['client_cpu_ms']:.1f}x",
                "(info)",
                "",
            )
        )
        rows.append(
            (
                "  claim latency p99",
                us(c["p99_ms"]),
                us(b["p99_ms"]),
                "",
                f"<= {CLAIM_P99_TARGET_MS:g} ms",
                verdict(c["p99_pass"]),
            )
        )
    if "lifecycle" in s:
        lc = s["lifecycle"]
        rows.append(
            (
                "full lifecycle (4 ops per item)",
                f"{lc['items_s']:,.0f} items/s",
                f"{lc['baseline_ops_s']:,.0f} ops/s",
                f"{lc['ratio']:.3f}",
                f">= {LIFECYCLE_RATIO_TARGET}",
                verdict(lc["ratio_pass"]),
            )
        )
        rows.append(
            (
                "  client CPU per item",
                us(lc["client_cpu_ms_per_item"]),
                "",
                "",
                "(info)",
                "",
            )
        )
    for name, label in (
        ("floor", "floor: EVALSHA 'return 1', claim's KEYS/ARGV"),
        ("bare_claim", "floor: Lua SET NX PX + INCR only"),
    ):
        if name in s:
            f = s[name]
            rows.append((label, f"{f['ops_s']:,.0f} ops/s", "", f"{f['ratio']:.2f}", "(info)", ""))
    if "growth" in s:
        g = s["growth"]
        large, small = f"{g['large_items']:,}", f"{g['small_items']:,}"
        rows.append(
            (
                f"claim p50 at {large} items",
                us(g["large_p50_ms"]),
                f"{us(g['small_p50_ms'])} at {small}",
                f"{g['ratio']:.2f}",
                f"<= {GROWTH_RATIO_TARGET}",
                verdict(g["ratio_pass"]),
            )
        )
        rows.append(
            (
                f"claim mean at {large} items",
                us(g["large_mean_ms"]),
                f"{us(g['small_mean_ms'])} at {small}",
                f"{g['mean_ratio']:.2f}",
                "(info)",
                "",
            )
        )
    header = ("figure", "value", "baseline", "ratio", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [
        "",
        f"Redis {s['redis']['version']} ({s['redis']['kind']}) at {s['redis']['url']}; "
        f"{s['rounds']} interleaved rounds of n={s['n']:,}, median round shown.",
    ]
    if "claim" in s:
        notes.append("claim ratio per round: " + ", ".join(f"{x:.2f}" for x in s["claim"]["round_ratios"]))
        notes.append("claim p99 per round:   " + ", ".join(us(x) for x in s["claim"]["round_p99_ms"]))
    if "lifecycle" in s:
        notes.append(
            "lifecycle ratio per round: " + ", ".join(f"{x:.3f}" for x in s["lifecycle"]["round_ratios"])
        )
    if "growth" in s:
        g = s["growth"]
        notes.append(
            f"growth: {g['samples_per_size']:,} claims per size, alternating; p50 ratio per round: "
            + ", ".join(f"{x:.2f}" for x in g["round_ratios"])
            + f"; fill took {g['fill_seconds']:.1f}s (untimed)"
        )
    misses = [r[0].strip() for r in rows if r[5] == "MISS"]
    notes.append(f"total {s['total_seconds']:.1f}s; deleted {s['deleted_keys']:,} bench keys.")
    notes.append("ALL TARGETS MET" if not misses else "MISS: " + "; ".join(misses))
    return "\n".join(lines + notes)
