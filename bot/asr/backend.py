"""The configured transcription backend: the local model, or a remote server with the local one as fallback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.asr.scheduler import Backend

if TYPE_CHECKING:
    from bot.config import Config


def load_backend(config: Config) -> Backend:
    """``asr.backend``: local loads the model now (blocking: seconds); remote loads nothing
    until the server first fails (then the local model, if ``remote_fallback``)."""
    from bot.asr.transcriber import WhisperTranscriber

    asr = config.asr
    if asr.backend == "remote":
        from bot.asr.remote import RemoteSettings, RemoteTranscriber

        local = (lambda: WhisperTranscriber.from_config(config)) if asr.remote_fallback else None
        return RemoteTranscriber(RemoteSettings.from_config(asr), local)
    return WhisperTranscriber.from_config(config)
