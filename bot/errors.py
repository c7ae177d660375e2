"""Errors that reach the user as one clear line: what went wrong and how to fix it."""

from __future__ import annotations

# The base class and storage's error live in storage (the bottom layer), so storage imports nothing of bot.
from storage.errors import StalkError, StorageError

__all__ = ["AudioInputError", "ConfigError", "ModelError", "StalkError", "StorageError", "network_reason"]


class ConfigError(StalkError):
    pass


class AudioInputError(StalkError):
    pass


class ModelError(StalkError):
    pass


def network_reason(exc: BaseException) -> str:
    """Why a download failed, in a few words instead of the library's paragraph."""
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for x in chain:
        # requests/httpx errors carry a response; urllib's HTTPError is one, with .code
        status = getattr(getattr(x, "response", None), "status_code", None) or getattr(x, "code", None)
        if isinstance(status, int) and 100 <= status < 600:
            return f"the server answered HTTP {status}"
    text = " ".join(str(x) for x in chain).lower()
    if any(k in text for k in ("name or service not known", "temporary failure in name resolution", "nodename")):
        return "no network (the server's name cannot be resolved)"
    if "connection refused" in text or "network is unreachable" in text or "connecterror" in text:
        return "no network (cannot connect to the server)"
    if "timed out" in text or "timeout" in text:
        return "no network (the connection timed out)"
    if "offline" in text:
        return "offline mode is on (HF_HUB_OFFLINE)"
    first = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {first[:120]}"
