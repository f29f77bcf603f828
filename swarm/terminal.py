"""What may reach a terminal: stored text with its control characters shown as escapes.

A description, a note, an error or a log line may hold terminal escape sequences (ESC ``[``...,
OSC titles and hyperlinks), BEL, CR, backspaces or NUL, which a terminal would act on: recolour
or clear the screen, rewrite what was printed, set the window title. ``terminal_safe`` is the one
rule every human-readable rendering applies to such text (the CLI's views, ``swarm/cli/render.py``;
console log lines, ``swarm/logs.py``). Text is stored byte-exact; only its display is escaped.
"""

from __future__ import annotations

import re

# What a terminal would act on: C0 controls but tab and newline, DEL, C1 controls (U+009B is a
# CSI of its own to some terminals), and the bidirectional overrides and isolates that reorder
# how a line reads ("Trojan Source").
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
NAMED_ESCAPES = {"\r": "\\r", "\x1b": "\\e"}  # the two most often seen, by their usual names


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def terminal_safe(text: str) -> str:
    """``text`` with every control character a terminal would act on shown as a visible escape
    (``\\e``, ``\\r``, ``\\x07``, ``\\x00``, ``\\u202e``); newlines, tabs, quotes and every other
    character (accents, emoji) as they are. Applying it twice changes nothing more."""
    return CONTROL_CHARACTERS.sub(_escape, text)
