"""Voiceprints in live sessions: the speaker model shared by every guild, each session's
verifier, and adding a voiceprint to a running call.

A session builds its ``CallVerifier`` when it starts (none when nobody is enrolled, so a bot
without voiceprints never loads the speaker model); participants are bound by Discord user id.
An enrolment during a call (``/enroll``) adds the new voiceprint to the running verifier, or
attaches a first one.
"""

from __future__ import annotations

import asyncio
import logging

from bot.config import Config
from bot.pipeline import CallPipeline
from bot.speaker.model import SpeakerModel
from bot.speaker.verifier import CallVerifier, verifier_for_call
from storage.db import Database
from storage.voiceprints import VoiceprintData, list_voiceprints

log = logging.getLogger(__name__)


class SpeakerModelSlot:
    """The speaker-embedding model, loaded once per bot process on first need (in a worker thread)."""

    def __init__(self, config: Config, model: SpeakerModel | None = None) -> None:
        self.config = config
        self.model = model
        self._lock = asyncio.Lock()

    async def get(self) -> SpeakerModel:
        """Raises StalkError (ModelError) when the model cannot be found, fetched or loaded."""
        async with self._lock:
            if self.model is None:
                from bot.speaker.model import load_speaker_model

                self.model = await asyncio.to_thread(load_speaker_model, self.config)
            return self.model


async def verifier_for_session(config: Config, db: Database, slot: SpeakerModelSlot) -> CallVerifier | None:
    """The verifier a new session starts with; None when verification is off, nobody is
    enrolled, or the model cannot be loaded (the call is still transcribed, unverified)."""
    if not config.speaker.verify or not await asyncio.to_thread(list_voiceprints, db):
        return None
    try:
        model = await slot.get()
        return await asyncio.to_thread(verifier_for_call, config, db, model)
    except Exception as exc:
        log.warning("speaker verification is off for this session: %s", exc)
        return None


def start_verifying(pipeline: CallPipeline, model: SpeakerModel, vp: VoiceprintData, config: Config) -> CallVerifier:
    """A voiceprint enrolled during the call: verify its owner from now on (earlier judged
    utterances of theirs are rescored by the running verifier; a call that had none gets one)."""
    verifier = pipeline.verifier
    if verifier is None:
        s = config.speaker
        verifier = CallVerifier(model, [vp], threshold=s.threshold, min_seconds=s.min_utterance_s, context=s.context)
        pipeline.attach_verifier(verifier)
    else:
        verifier.add_voiceprint(vp)
    return verifier
