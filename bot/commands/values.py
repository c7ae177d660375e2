"""Values typed on the command line, checked where they come in: one clear line each.

Numbers are refused when they are not finite (nan, inf), out of range, or beyond what the
database can hold (SQLite integers are signed 64-bit); names when they hold control or
invisible characters (``storage.plaintext`` would show them differently from what was typed, and
they would reach terminals and Discord), an '=' or are too long. The argparse ``type=``
functions raise ``argparse.ArgumentTypeError``, which ``bot.cli`` prints as one ``error:`` line.
"""

from __future__ import annotations

import argparse
import math

INT64_MAX = 2**63 - 1
MAX_SPEED = 1000.0  # as [replay] speed allows
MIN_SPEED = 0.01  # slower than 1/100 of real time is a mistake, and a 1e-300 pace never ends
MAX_DAYS = 36500  # as [retention] max_age_days allows: a hundred years


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} is out of range: {what} is from {low} to {high}")
    return value


def speed(text: str) -> float:
    value = _number(text)
    if value != 0 and not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: 0 (as fast as possible), or from {MIN_SPEED:g} to {MAX_SPEED:g} (1 = real time)"
        )
    return value


def session_id(text: str) -> int:
    return _integer(text, 1, INT64_MAX, "a session id")


def count(low: int, high: int, what: str):
    """A type for a whole number from ``low`` to ``high`` (``--limit``, ``--page``, ``--context``)."""

    def parse(text: str) -> int:
        return _integer(text, low, high, what)

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in some messages
    return parse


def days(text: str) -> float:
    value = _number(text)
    if not 0 < value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a number of days above 0, at most {MAX_DAYS}")
    return value


def user_id(text: str) -> str:
    """A Discord user id (snowflake): digits, at most 20."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 20 or int(value) > 2**64 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Discord user id (up to 20 digits)")
    return value
