"""docker-compose.yml against the CLI and config/: every command a swarm service runs parses as a
real ``swarm`` subcommand, every mounted file exists, and Prometheus, Grafana and the collector
point at services and metrics that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import typer
import typer.main
import yaml
from celery.bin.celery import celery as celery_cli
from typer.core import TyperGroup

import swarm.cli
from swarm.models import Role

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SWARM_IMAGE = "swarm:latest"
# The swarm's own metrics (swarm metrics); the dashboard queries only these.
COUNTERS = {"swarm_items_claimed_total", "swarm_items_completed_total", "swarm_items_failed_total"}
HISTOGRAMS = {"swarm_work_duration_seconds", "swarm_claim_latency_seconds"}
GAUGES = {
    "swarm_team_velocity_points",
    "swarm_agents_active",
    "swarm_queue_depth",
    "swarm_expired_leases",
    "swarm_dead_items",
}
SWARM_METRICS = (
    COUNTERS | GAUGES | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
_REQUIRED = re.compile(r"\$\{(\w+):\?([^}]+)\}")  # compose's ${VAR:?message}: set and non-empty, or refused


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set (the defaults), and ``$$`` as ``$``."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value).replace("$$", "$")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = load_yaml(COMPOSE)
    assert "version" not in compose, "the Compose Specification has no version key"
    return dict(compose["services"])


def swarm_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == SWARM_IMAGE}


def parse_swarm(args: list[str]) -> typer.Context:
    """The ``swarm`` subcommand's context for ``args``, parsed and validated, never run
    (Typer's own click: a refusal is a ``typer.TyperException``, a usage error)."""
    root = typer.main.get_command(swarm.cli.app)
    assert isinstance(root, TyperGroup)
    parent = typer.Context(root, info_name="swarm")
    command = root.get_command(parent, args[0])
    assert command is not None, f"swarm has no subcommand {args[0]!r}"
    return command.make_context(args[0], list(args[1:]), parent=parent, resilient_parsing=False)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def test_the_image_runs_the_swarm_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["swarm"]' in dockerfile
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"pip install -c \S*constraints\.txt ", dockerfile), "pinned, non-editable"
    assert "-e " not in dockerfile
    assert "--editable" not in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE), "a non-root user"
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None
    with pytest.raises(typer.Exit) as shown:  # --help prints and exits 0
        typer.main.get_command(swarm.cli.app).make_context("swarm", json.loads(cmd.group(1)))
    assert shown.value.exit_code == 0


def test_every_swarm_service_command_is_a_real_subcommand_with_accepted_options(
    services: dict[str, dict[str, Any]],
) -> None:
    ours = swarm_services(services)
    assert set(ours) >= {*(r.value for r in Role), "beat", "flower", "metrics"}
    for name, service in ours.items():
        command = [interpolate(str(a)) for a in service["command"]]
        try:
            parse_swarm(command)
        except typer.TyperException as exc:
            pytest.fail(f"service {name}: `swarm {shlex.join(command)}` is refused: {exc.format_message()}")


def test_an_unknown_option_would_be_caught() -> None:
    with pytest.raises(typer.TyperException, match="No such option"):
        parse_swarm(["worker", "--role", "qa", "--no-such-option"])
    with pytest.raises(typer.TyperException, match="greater than or equal to 1"):
        parse_swarm(["worker", "--role", "qa", "-c", "0"])  # below its minimum


def test_one_scalable_worker_service_per_role(services: dict[str, dict[str, Any]]) -> None:
    for role in Role:
        service = services[role.value]
        context = parse_swarm([interpolate(str(a)) for a in service["command"]])
        assert context.info_name == "worker"
        assert context.params["role"] == role.value
        assert context.params["name"] is None, "nodes are ROLE@<container>, one per replica"
        assert "container_name" not in service, "--scale needs a name per replica"
        assert "hostname" not in service, "--scale needs a hostname per replica"
        # Its healthcheck pings this container's own node.
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        argv = shlex.split(interpolate(test[1]).split(">", 1)[0])
        assert argv[:3] == ["celery", "-A", "swarm"]  # the one name of the swarm's app
        parent = click.Context(celery_cli, info_name="celery")
        inspect = celery_cli.get_command(parent, argv[3])
        assert inspect is not None
        ping = inspect.make_context(argv[3], argv[4:], parent=parent, resilient_parsing=False)
        assert ping.params["command"] == "ping"
        assert ping.params["destination"] == [f"{role.value}@$HOSTNAME"]


def test_swarm_services_share_one_definition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in swarm_services(services).items():
        env = service["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["restart"] in {"unless-stopped", "on-failure", "always"}, name
        assert service["build"] == ".", name


def test_redis_never_evicts_and_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(str(v).endswith(":/data") for v in redis["volumes"])


def test_flower_requires_basic_auth_with_no_default_and_its_healthcheck_and_port_match(
    services: dict[str, dict[str, Any]],
) -> None:
    flower = services["flower"]
    required = _REQUIRED.fullmatch(str(flower["environment"]["SWARM_FLOWER_BASIC_AUTH"]))
    assert required, "SWARM_FLOWER_BASIC_AUTH is ${VAR:?message}: required, no default password"
    assert required.group(1) == "SWARM_FLOWER_BASIC_AUTH"
    assert "user:password" in required.group(2), "the refusal says what to set"
    port = parse_swarm(flower["command"]).params["port"]
    assert f"127.0.0.1:{port}:{port}" in [published(p) for p in flower["ports"]]
    assert port_of(re.findall(r"http://[^']+", flower["healthcheck"]["test"][-1])[0]) == port
    # The shared environment is merged in, not replaced.
    assert flower["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def published(port: object) -> str:
    return str(port).split("#", 1)[0].strip()


def test_every_port_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    ports = {name: [published(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert all(ports[name] for name in ("flower", "redis", "grafana", "prometheus", "jaeger", "metrics"))
    for name, mappings in ports.items():
        for mapping in mappings:
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} on every interface"


def test_beat_runs_twice(services: dict[str, dict[str, Any]]) -> None:
    assert services["beat"]["deploy"]["replicas"] == 2


def test_every_mounted_config_file_exists(services: dict[str, dict[str, Any]]) -> None:
    mounts = [str(v) for s in services.values() for v in s.get("volumes", [])]
    local = [m.split(":")[0] for m in mounts if m.startswith("./")]
    assert len(local) >= 4
    for source in local:
        assert (ROOT / source).exists(), f"{source} is mounted but missing"


def served_metrics_port(command: list[str]) -> int:
    """The port ``swarm metrics --serve [PORT]`` serves on (its default: the setting's, 9808)."""
    params = parse_swarm(command).params
    assert params["serve"] is True, "the metrics service serves /metrics"
    return int(params["port"] or 9808)


def test_prometheus_scrapes_services_that_exist_on_their_ports(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(ROOT / "config/prometheus/prometheus.yml")
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    served = {
        "metrics": served_metrics_port(services["metrics"]["command"]),
        "flower": parse_swarm(services["flower"]["command"]).params["port"],
        "localhost": 9090,
    }
    assert set(targets) >= {"swarm", "flower"}
    for job, hosts in targets.items():
        for target in hosts:
            host, _, port = target.partition(":")
            assert host == "localhost" or host in services, f"{job}: no service {host}"
            assert int(port) == served[host], f"{job}: {host} serves on {served[host]}, not {port}"


def _queries(dashboard: dict[str, Any]) -> list[str]:
    panels = list(dashboard["panels"])
    panels += [inner for p in dashboard["panels"] for inner in p.get("panels", [])]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    variables = [v["definition"] for v in dashboard.get("templating", {}).get("list", [])]
    return exprs + variables


def test_the_grafana_dashboard_queries_only_the_swarm_metrics() -> None:
    dashboard = json.loads((ROOT / "config/grafana/dashboards/swarm.json").read_text(encoding="utf-8"))
    queries = _queries(dashboard)
    assert len(queries) >= 10
    used: set[str] = set()
    for query in queries:
        names = set(re.findall(r"\b(swarm_\w+)", query))
        assert names, f"no swarm metric in {query!r}"
        assert names <= SWARM_METRICS, f"unknown metrics {names - SWARM_METRICS} in {query!r}"
        used |= names
    # Throughput, success, claim latency, velocity, queue depth, agents.
    assert used >= {
        "swarm_items_completed_total",
        "swarm_items_failed_total",
        "swarm_claim_latency_seconds_bucket",
        "swarm_team_velocity_points",
        "swarm_queue_depth",
        "swarm_agents_active",
    }
    datasources = load_yaml(ROOT / "config/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    uids = {d["uid"] for d in datasources}
    assert {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p} <= uids
    assert urlsplit(datasources[0]["url"]).hostname == "prometheus"


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them(
    services: dict[str, dict[str, Any]],
) -> None:
    provider = load_yaml(ROOT / "config/grafana/provisioning/dashboards/swarm.yml")["providers"][0]
    mounts = dict(str(v).split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./config/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./config/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_collector_takes_otlp_and_sends_it_to_jaeger(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(ROOT / "config/otel-collector.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert "jaeger" in services
    mount = next(str(v) for v in services["otel-collector"]["volumes"] if "otel-collector.yaml" in str(v))
    assert f"--config={mount.split(':')[1]}" in services["otel-collector"]["command"]


def _compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config -q`` with only ``env`` (and PATH) set; an empty env file keeps a
    local ``.env`` out of it."""
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    return subprocess.run(
        ["docker-compose", "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
    )


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_docker_compose_config_accepts_the_file_with_flowers_credentials(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, SWARM_FLOWER_BASIC_AUTH="ops:a-long-secret")
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_docker_compose_refuses_to_start_without_flowers_credentials(tmp_path: Path) -> None:
    done = _compose_config(tmp_path)
    assert done.returncode != 0
    assert "set SWARM_FLOWER_BASIC_AUTH=user:password" in done.stderr
