"""Short ids: a table shows the tail of each id's timestamp, unique among its rows, and commands
take such a tail when exactly one item's id ends in it."""

from __future__ import annotations

import pytest

from swarm.errors import BadInput, NotFound
from swarm.ids import new_work_id
from swarm.ledger import Ledger
from swarm.short_ids import SHORT_DIGITS, resolve_work_id, shorten

NODE_A, NODE_B = "0123456789ab", "ba9876543210"


def wid(stamp: int, node: str = NODE_A) -> str:
    return f"work_{stamp:019d}_{node}"


def test_ids_of_one_burst_show_the_last_seven_digits_of_their_timestamps() -> None:
    ids = [new_work_id() for _ in range(50)]
    short = shorten(ids)
    assert all(len(s) == SHORT_DIGITS for s in short.values())
    assert all(full.split("_")[1].endswith(s) for full, s in short.items())
    assert len(set(short.values())) == len(ids), "each row's id is told apart"


def test_ids_sharing_a_tail_show_as_many_digits_as_tell_them_apart() -> None:
    a, b, c = wid(1796000000001234567), wid(1796000000091234567), wid(1796000000000000001)
    assert shorten([a, b, c]) == {a: "01234567", b: "91234567", c: "0000001"}


def test_an_id_only_its_node_tells_apart_and_a_named_agent_stay_whole() -> None:
    same_ns = [wid(1796000000001234567, NODE_A), wid(1796000000001234567, NODE_B)]
    whole = [*same_ns, "agent_demo"]
    assert shorten(whole) == {identifier: identifier for identifier in whole}


def test_a_tail_names_the_one_item_whose_id_ends_in_it(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", "one", work_id=wid(1796000000001234567))
    fake_ledger.submit("build", "other", work_id=wid(1796000000007654321))
    assert resolve_work_id(fake_ledger, "1234567") == item.id
    assert resolve_work_id(fake_ledger, "4567") == item.id
    assert resolve_work_id(fake_ledger, item.id) == item.id, "a full id is taken as it is"


def test_a_tail_of_several_items_is_refused_naming_them(fake_ledger: Ledger) -> None:
    first = fake_ledger.submit("build", "one", work_id=wid(1796000000001234567))
    second = fake_ledger.submit("build", "two", work_id=wid(1796000000091234567))
    second_claimed = fake_ledger.claim(second.id, "dev-1")  # any status: every registry is looked in
    with pytest.raises(BadInput, match="ambiguous") as refused:
        resolve_work_id(fake_ledger, "1234567")
    assert first.id in str(refused.value)
    assert second_claimed.id in str(refused.value)
    assert refused.value.exit_code == 2
    assert resolve_work_id(fake_ledger, "91234567") == second.id, "more digits tell them apart"


def test_a_tail_of_no_item_is_not_found_and_short_text_is_no_tail(fake_ledger: Ledger) -> None:
    fake_ledger.submit("build", "one", work_id=wid(1796000000001234567))
    with pytest.raises(NotFound, match="ending in 7654321"):
        resolve_work_id(fake_ledger, "7654321")
    assert resolve_work_id(fake_ledger, "567") == "567", (
        "under four digits: no lookup, the command refuses it"
    )
