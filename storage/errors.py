"""The error every S-Talk failure derives from, and storage's own.

Defined here, in the bottom layer, so that ``storage`` needs nothing from ``bot`` (which builds
on storage); ``bot.errors`` re-exports both beside the bot's other errors.
"""

from __future__ import annotations


class StalkError(Exception):
    """An error the user can act on. ``str()`` is the line printed to them."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}: {fix}" if fix else what)


class StorageError(StalkError):
    pass
