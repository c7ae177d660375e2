"""What the pipeline calls during a call: embed utterances, judge them per participant.

One ``CallVerifier`` per call. It holds the voiceprints of the loaded model only: a
voiceprint made with another model is never scored (``bind`` raises instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.errors import StalkError
from bot.speaker.calibration import threshold_for
from bot.speaker.model import SpeakerModel
from bot.speaker.tracker import Judged, StreamTracker
from storage.vocab import Verification
from storage.voiceprints import VoiceprintData

log = logging.getLogger(__name__)


class VoiceprintModelMismatch(StalkError):
    pass


def check_model(vp: VoiceprintData, model: SpeakerModel) -> None:
    if vp.model_id != model.model_id:
        raise VoiceprintModelMismatch(
            f"the voiceprint of {vp.name} was made with speaker model {vp.model_name} ({vp.model_id[:12]}), "
            f"not the loaded {model.info.name} ({model.model_id[:12]}); scores of different models are not comparable",
            f"re-enrol {vp.name} (python -m bot enroll {vp.name} FILE ...) or set speaker.model back to that model",
        )


@dataclass(frozen=True)
class Judgement:
    item: Judged  # the new utterance, with its verdict
    revised: list[Judged]  # earlier utterances of the same participant whose verdict changed


class CallVerifier:
    def __init__(
        self,
        model: SpeakerModel,
        voiceprints: Sequence[VoiceprintData] = (),
        *,
        threshold: float = 0.0,
        min_seconds: float = 1.0,
        context: int = 2,
    ) -> None:
        self.model = model
        self.threshold = threshold_for(model.model_id, model.info.name, threshold)
        self.min_seconds = min_seconds
        self.context = context
        self._enrolled = {vp.name: vp for vp in voiceprints if vp.model_id == model.model_id}
        self._streams: dict[str, StreamTracker] = {}
        self._users: dict[str, str | None] = {}  # stream key -> user id
        self._lock = threading.Lock()

    def add_voiceprint(self, vp: VoiceprintData) -> None:
        """Make a (new) voiceprint known, e.g. enrolled during the call."""
        check_model(vp, self.model)
        with self._lock:
            self._enrolled[vp.name] = vp
            for key, t in self._streams.items():
                t.others = self._other_prints()
                if t.owner == vp.name or (vp.user_id is not None and self._users.get(key) == vp.user_id):
                    t.set_voiceprint(vp.embedding)

    def remove_voiceprint(self, name: str) -> None:
        """A voiceprint deleted during the call is no longer scored against: its owner's
        utterances from now on are 'unknown'."""
        with self._lock:
            vp = self._enrolled.pop(name, None)
            if vp is None:
                return
            for key, t in list(self._streams.items()):
                if t.voiceprint is not None and np.array_equal(t.voiceprint, vp.embedding):
                    # A fresh tracker: verdicts already given stay as stored (re-deciding them without
                    # the voiceprint would revise them all to 'unknown'); counts() restarts here.
                    self._streams[key] = StreamTracker(
                        owner=t.owner,
                        voiceprint=None,
                        threshold=self.threshold,
                        others=self._other_prints(),
                        context=self.context,
                        min_seconds=self.min_seconds,
                    )
                else:
                    t.others = self._other_prints()

    @property
    def enrolled(self) -> frozenset[str]:
        """Names of the voiceprints this call scores against now."""
        with self._lock:
            return frozenset(self._enrolled)

    def _other_prints(self) -> dict[str, np.ndarray]:
        return {n: vp.embedding for n, vp in self._enrolled.items()}

    def bind(
        self, key: str, name: str, user_id: str | None = None, voiceprint: VoiceprintData | None = None
    ) -> VoiceprintData | None:
        """Start judging participant ``key`` against ``voiceprint``; by default the one enrolled
        for ``user_id`` (a Discord account), else the one enrolled as ``name``."""
        if voiceprint is not None:
            check_model(voiceprint, self.model)
        with self._lock:
            by_user = [v for v in self._enrolled.values() if user_id is not None and v.user_id == user_id]
            vp = voiceprint or (by_user[0] if by_user else self._enrolled.get(name))
            self._users[key] = user_id
            self._streams[key] = StreamTracker(
                owner=name,
                voiceprint=None if vp is None else vp.embedding,
                threshold=self.threshold,
                others=self._other_prints(),
                context=self.context,
                min_seconds=self.min_seconds,
            )
            return vp

    def has_voiceprint(self, key: str) -> bool:
        t = self._streams.get(key)
        return t is not None and t.voiceprint is not None

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """The utterance's embedding, or None when it is too short to judge."""
        if len(audio) < self.min_seconds * 16000:
            return None
        return self.model.embed(audio)

    def judge(self, key: str, start: float, end: float, embedding: np.ndarray | None) -> Judgement:
        with self._lock:
            tracker = self._streams[key]
            item, revised = tracker.add(start, end, embedding)
        return Judgement(item, revised)

    def counts(self, key: str) -> dict[str, int]:
        """Current verdicts of a participant: verification -> count, and label -> count."""
        with self._lock:
            t = self._streams.get(key)
            out: dict[str, int] = {}
            for item in t.items if t else []:
                v = item.verdict
                out[v.verification] = out.get(v.verification, 0) + 1
                if v.verification == Verification.MISMATCH and v.label:
                    out[v.label] = out.get(v.label, 0) + 1
            return out

    @property
    def cpu_seconds(self) -> float:
        return self.model.cpu_seconds


def verifier_for_call(config, db, speaker_model: SpeakerModel | None = None) -> CallVerifier | None:
    """A verifier holding every voiceprint of the configured model (None when speaker.verify is off
    or nobody is enrolled; the model is loaded only if needed). For live calls, where who will
    join is not known in advance; participants are bound by user id or name as they join."""
    from storage.voiceprints import list_voiceprints

    s = config.speaker
    everyone = list_voiceprints(db) if s.verify else []
    if not everyone:
        return None
    if speaker_model is None:
        from bot.speaker.model import load_speaker_model

        speaker_model = load_speaker_model(config)
    stale = [vp.name for vp in everyone if vp.model_id != speaker_model.model_id]
    if stale:
        log.warning(
            "not verifying %s: enrolled with another speaker model than %s; re-enrol them",
            ", ".join(stale),
            speaker_model.info.name,
        )
    # CallVerifier keeps the voiceprints of its own model only: no second query for them.
    return CallVerifier(
        speaker_model, everyone, threshold=s.threshold, min_seconds=s.min_utterance_s, context=s.context
    )
