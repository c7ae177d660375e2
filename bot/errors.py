"""Errors that reach the user as one clear line: what went wrong and how to fix it."""

from __future__ import annotations


class StalkError(Exception):
    """An error the user can act on. ``str()`` is the line printed to them."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}: {fix}" if fix else what)


class ConfigError(StalkError):
    pass


class AudioInputError(StalkError):
    pass


class ModelError(StalkError):
    pass


class StorageError(StalkError):
    pass
