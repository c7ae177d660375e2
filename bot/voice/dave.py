"""The DAVE (end-to-end encryption) step of the receive path, around a davey.DaveSession.

davey keeps the MLS group, the per-sender key ratchets and the keys of the previous epoch
for the transition window, so this step only decides what to hand it:

* no session (DAVE off for this call): frames are already plain Opus;
* Discord's 3-byte Opus silence frame is never end-to-end encrypted;
* a frame without the DAVE magic marker is plain Opus; it is accepted only while the
  session has no group yet (senders cannot encrypt either) or davey says the sender's
  decryptor is in passthrough (protocol transitions, downgrades);
* anything else goes to ``DaveSession.decrypt``; failures return None and are counted.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.voice.opus import SILENCE_FRAME

log = logging.getLogger(__name__)

# DAVE protocol: every encrypted media frame ends with this 2-byte marker.
DAVE_MAGIC = b"\xfa\xfa"


def _audio_media_type() -> Any:
    import davey

    return davey.MediaType.audio


class DaveDecryptor:
    def __init__(self, session: Any | None = None) -> None:
        self._session = session
        self._audio = _audio_media_type() if session is not None else None
        self.failures = 0
        self.passthroughs = 0
        self.decrypted = 0
        self._last_epoch: int | None = None

    @property
    def session(self) -> Any | None:
        return self._session

    def set_session(self, session: Any | None) -> None:
        self._session = session
        if session is not None and self._audio is None:
            self._audio = _audio_media_type()
        self._last_epoch = None

    def _passthrough_allowed(self, session: Any, user_id: int) -> bool:
        try:
            if not session.ready:
                return True
            return bool(session.can_passthrough(user_id))
        except Exception:
            # davey raises for a user it has no decryptor for: not in the group, so no
            # passthrough grant either.
            return False

    def decrypt(self, user_id: int, frame: bytes) -> bytes | None:
        session = self._session
        if session is None or frame == SILENCE_FRAME:
            return frame
        if not frame.endswith(DAVE_MAGIC):
            if self._passthrough_allowed(session, user_id):
                self.passthroughs += 1
                return frame
            self.failures += 1
            return None
        try:
            plain = session.decrypt(user_id, self._audio, frame)
        except Exception as exc:
            # A plain Opus frame can end in FA FA by chance (1 in 65536).
            if self._passthrough_allowed(session, user_id):
                self.passthroughs += 1
                return frame
            self.failures += 1
            self._note_failure(session, user_id, exc)
            return None
        self.decrypted += 1
        return bytes(plain)

    def _note_failure(self, session: Any, user_id: int, exc: Exception) -> None:
        # Failures cluster around epoch changes (a commit we have not processed yet);
        # logging the epoch makes that visible without logging every packet.
        try:
            epoch = session.epoch
        except Exception:
            epoch = None
        if epoch != self._last_epoch or self.failures in (1, 10, 100) or self.failures % 1000 == 0:
            log.info(
                "DAVE decrypt failed for user %d at epoch %s (%d failures): %s", user_id, epoch, self.failures, exc
            )
            self._last_epoch = epoch
