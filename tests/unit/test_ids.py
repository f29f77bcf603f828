"""Ids (SPEC §4): ``work_<ns>_<node>`` / ``agent_<ns>_<node>``, unique across processes, sortable."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import threading
import time

import pytest

from swarm.ids import id_timestamp_ns, new_agent_id, new_work_id

WORK_ID = re.compile(r"^work_(\d{19})_([0-9a-f]{12})$")
AGENT_ID = re.compile(r"^agent_(\d{19})_([0-9a-f]{12})$")


def _mint(count: int) -> list[str]:
    """Runs in a spawned process: that process's ids, in the order it made them."""
    return [new_work_id() for _ in range(count)]


def _node(identifier: str) -> str:
    return identifier.rsplit("_", 1)[1]


def test_work_id_is_work_then_19_digit_nanoseconds_then_12_hex_node() -> None:
    assert WORK_ID.fullmatch(new_work_id())


def test_agent_id_is_agent_then_19_digit_nanoseconds_then_12_hex_node() -> None:
    assert AGENT_ID.fullmatch(new_agent_id())


def test_ids_of_one_process_share_its_node_suffix() -> None:
    assert _node(new_work_id()) == _node(new_agent_id()) == _node(new_work_id())


def test_ids_strictly_increase_across_100k_calls() -> None:
    ids = [new_work_id() for _ in range(100_000)]
    stamps = [id_timestamp_ns(i) for i in ids]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert ids == sorted(ids), "string order must be creation order"
    assert len(set(ids)) == len(ids)


def test_work_and_agent_ids_draw_from_one_increasing_clock() -> None:
    ids = [new_work_id() if n % 2 else new_agent_id() for n in range(10_000)]
    stamps = [id_timestamp_ns(i) for i in ids]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_ids_from_many_threads_are_unique_and_each_threads_ids_increase() -> None:
    per_thread: dict[int, list[str]] = {}

    def mint(n: int) -> None:
        per_thread[n] = [new_work_id() for _ in range(10_000)]

    threads = [threading.Thread(target=mint, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in per_thread.values() for i in ids]
    assert len(set(everything)) == len(everything) == 40_000
    for ids in per_thread.values():
        assert ids == sorted(ids)


def test_ids_from_several_processes_never_collide() -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        batches = pool.map(_mint, [25_000] * 4)
    batches.append(_mint(25_000))
    union = {i for batch in batches for i in batch}
    assert len(union) == 5 * 25_000
    assert len({_node(batch[0]) for batch in batches}) == 5, "each process draws its own node"
    for batch in batches:
        assert batch == sorted(batch)


def _id_from_forked_child() -> str:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id down the pipe, then leave without running pytest's teardown
        try:
            os.close(read_end)
            os.write(write_end, new_work_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return child_id


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_node_suffix_of_its_own() -> None:
    before = new_work_id()
    child = _id_from_forked_child()
    after = new_work_id()
    assert WORK_ID.fullmatch(child)
    assert _node(child) != _node(before)
    assert _node(after) == _node(before), "forking must not change the parent's node"
    assert id_timestamp_ns(before) < id_timestamp_ns(child) < id_timestamp_ns(after)


def test_id_timestamp_ns_reads_back_the_creation_time() -> None:
    start = time.time_ns()
    stamp = id_timestamp_ns(new_work_id())
    end = time.time_ns()
    assert start <= stamp
    # The counter may run a little ahead of a coarse clock, never by anything like a second.
    assert stamp - end < 1_000_000_000


def test_id_timestamp_ns_round_trips_a_known_id() -> None:
    assert id_timestamp_ns("work_1732390000123456789_3f9a2c1b7d0e") == 1732390000123456789
    assert id_timestamp_ns("agent_0000000000000000042_abcdefabcdef") == 42


@pytest.mark.parametrize(
    "text",
    [
        "",
        "work_123_3f9a2c1b7d0e",  # too few digits
        "work_1732390000123456789_3F9A2C1B7D0E",  # upper-case node
        "work_1732390000123456789_3f9a2c1b7d0",  # 11 hex digits
        "task_1732390000123456789_3f9a2c1b7d0e",  # unknown kind
        "work_1732390000123456789",  # no node
        pytest.param("work_1732390000123456789_3f9a2c1b7d0e\n", id="trailing-newline"),
        "xwork_1732390000123456789_3f9a2c1b7d0e",
    ],
)
def test_id_timestamp_ns_refuses_text_that_is_not_a_swarm_id(text: str) -> None:
    with pytest.raises(ValueError, match="not a swarm id"):
        id_timestamp_ns(text)
