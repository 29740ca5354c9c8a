"""What the norex.vpn input filters (plugins/filter/) share: type checks and the one-line messages they give.

Each *_errors filter returns a list of one-line messages, empty when the input is good; these helpers return
such lists too, so a filter adds them up.
"""

from __future__ import annotations


def is_str(value) -> bool:
    return isinstance(value, str)


def not_a_list(values, name: str, what: str, show_value: bool = False) -> list[str]:
    """[] when values is a list (or tuple); else "NAME must be a list of WHAT, not TYPE" (and the value if shown).

    A string is never a list here, although Jinja would iterate it. show_value is off where the value could be a
    key or a peer list, which messages never repeat.
    """
    if not is_str(values) and isinstance(values, (list, tuple)):
        return []
    shown = f" {values!r}" if show_value else ""
    return [f"{name} must be a list of {what}, not {type(values).__name__}{shown}"]


def listed_twice(seen: set, item, where: str) -> list[str]:
    """["WHERE is listed twice"] when item was seen before; remembers it."""
    if item in seen:
        return [f"{where} is listed twice"]
    seen.add(item)
    return []
