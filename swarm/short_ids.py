"""Short ids, like git's short hashes: the tail of an id's timestamp.

A swarm id is ``work_<19-digit ns>_<12-hex node>`` (``swarm.ids``). Ids one process mints share
the node, and ids minted about the same time share the leading digits: what tells two ids apart
is the tail of the timestamp. Tables show the last ``SHORT_DIGITS`` digits of each id, more where
two rows would look alike (``shorten``); ``--json`` keeps full ids. Commands take a full id, or
a tail of at least ``MIN_TAIL_DIGITS`` digits that matches exactly one item (``resolve_work_id``);
a tail that matches several is refused, naming them. Looking a tail up scans the status
registries (``ZSCAN`` with a pattern, in Redis); a full id is used as it is, with no lookup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from swarm.errors import BadInput, NotFound

# The CLI imports this module at start-up (`swarm --help` too, which must not import pydantic):
# the ledger and its models are imported only when a short id is looked up.
if TYPE_CHECKING:
    from swarm.ledger import Ledger

SHORT_DIGITS = 7  # a table's ids: 10**7 tails, so rows of one burst or one day rarely share one
MIN_TAIL_DIGITS = 4  # the shortest tail a command takes (it must still match one item only)
SCAN_COUNT = 1000  # registry entries per ZSCAN round trip
AMBIGUOUS_SHOWN = 5  # candidates an ambiguous tail's refusal names
STAMP_DIGITS = 19  # a swarm id's nanosecond timestamp
_ID = re.compile(r"(work|agent)_([0-9]{19})_([0-9a-f]{12})")
_TAIL = re.compile(r"[0-9]+")


def shorten(ids: Iterable[str]) -> dict[str, str]:
    """Each id's short form among ``ids``: the shortest tail of its timestamp, of at least
    ``SHORT_DIGITS`` digits, that no other id of ``ids`` ends in. An id that is no swarm id (an
    agent registered by name), or that only its node tells apart, stays whole."""
    unique = list(dict.fromkeys(ids))
    stamps = {i: m.group(2) for i in unique if (m := _ID.fullmatch(i))}
    short = {i: i for i in unique}
    left = dict(stamps)
    for digits in range(SHORT_DIGITS, STAMP_DIGITS + 1):
        if not left:
            break
        seen = Counter(stamp[-digits:] for stamp in stamps.values())
        for identifier, stamp in list(left.items()):
            if seen[stamp[-digits:]] == 1:
                short[identifier] = stamp[-digits:]
                del left[identifier]
    return short


def is_tail(text: str) -> bool:
    """Whether ``text`` is a short id (digits only, at least ``MIN_TAIL_DIGITS``)."""
    return len(text) >= MIN_TAIL_DIGITS and _TAIL.fullmatch(text) is not None


def resolve_work_id(ledger: Ledger, text: str) -> str:
    """The full id ``text`` names: ``text`` itself unless it is a short id, else the one item whose
    timestamp ends in it. None: NotFound; several: BadInput (exit 2), naming some of them."""
    if not is_tail(text):
        return text  # a full id (or not an id at all: the command that uses it says so)
    found = sorted(_ids_ending_in(ledger, text))
    if not found:
        raise NotFound(f"no work item with an id ending in {text}")
    if len(found) > 1:
        named = ", ".join(found[:AMBIGUOUS_SHOWN]) + (", ..." if len(found) > AMBIGUOUS_SHOWN else "")
        raise BadInput(
            f"{text} is ambiguous: {len(found)} items' ids end in it ({named}); "
            "give more of its digits, or the full id"
        )
    return found[0]


def _ids_ending_in(ledger: Ledger, tail: str) -> set[str]:
    from swarm.models import Status  # noqa: PLC0415 - see the imports: not at start-up

    pattern = f"work_*{tail}_*"  # the node follows the timestamp: the digits end it

    def scan() -> set[str]:
        found: set[str] = set()
        for status in Status:
            key = ledger.keys.status(status)
            found.update(str(m) for m, _ in ledger.client.zscan_iter(key, match=pattern, count=SCAN_COUNT))
        return found

    result: set[str] = ledger.read(scan)
    return result
