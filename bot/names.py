"""A person's name as someone types it (replay's NAME=FILE, a voiceprint's NAME): checked once,
where it enters, by one rule, so what is stored and shown later is already plain."""

from __future__ import annotations

from bot.errors import StalkError
from storage.plaintext import is_plain


def check_name(name: str, what: str, limit: int) -> str:
    """A person's name (replay NAME, voiceprint NAME): printable, no '=', 1-``limit`` characters."""
    value = name.strip()
    rule = f"use 1-{limit} characters: letters, digits, single spaces and punctuation, no '='"
    if not value:
        raise StalkError(f"bad {what} {name!r}: it is empty", rule)
    if not is_plain(value):
        raise StalkError(
            f"bad {what} {name!r}: it holds control or invisible characters, line breaks or runs of spaces",
            rule,
        )
    if "=" in value:
        raise StalkError(f"bad {what} {name!r}: it holds '='", rule)
    if len(value) > limit:
        raise StalkError(f"bad {what} {name[:20]!r}...: {len(value)} characters", rule)
    return value
