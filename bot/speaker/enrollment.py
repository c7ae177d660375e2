"""Enrolment: speech in, voiceprint out, behind quality gates with feedback a user can act on.

Works on in-memory audio (16 kHz mono float32), so the same gates serve files
(``python -m bot enroll``) and speech captured live in a call. Each gate raises an
``EnrollmentError`` naming what was wrong and what to do; nothing is stored by this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.audio.segmenter import Segment, Segmenter, SegmenterOptions
from bot.audio.vad import SAMPLE_RATE, SileroModel
from bot.errors import AudioInputError, StalkError
from bot.speaker.model import SpeakerModel
from storage.voiceprints import VoiceprintData

CLIP_LEVEL = 0.985  # |sample| at or above this is taken as clipped
MAX_CLIPPED_FRACTION = 0.002  # of speech samples; a few peaks touching full scale are harmless
QUIET_DBFS = -45.0  # RMS over detected speech below this is too quiet to give a reliable voiceprint
PIECE_SECONDS = 4.0  # speech is embedded in pieces of about this length (for the one-voice check)
MIN_PIECE_SECONDS = 1.5
# Two groups of pieces are two voices when their centroids score below this (cosine). Measured
# on the shared speakers with CAM++: pieces of one speaker score 0.55-0.9 between themselves,
# of different speakers -0.1-0.35 (benchmarks/calibrate_speaker.py prints the distributions).
SAME_VOICE = 0.45
MINOR_VOICE_SECONDS = 2.0  # a second voice with less speech than this is ignored


class EnrollmentError(StalkError):
    """An enrolment gate failed; ``gate`` says which (for programs), ``str()`` is for people."""

    def __init__(self, gate: str, what: str, fix: str | None = None) -> None:
        self.gate = gate
        super().__init__(what, fix)


@dataclass(frozen=True)
class EnrollmentResult:
    embedding: np.ndarray  # L2-normalised mean of the pieces' embeddings
    pieces: int
    speech_seconds: float
    consistency: float  # lowest cosine of a piece to the voiceprint
    model_id: str
    model_name: str
    scoring: dict = field(default_factory=dict)

    def voiceprint(self, name: str, user_id: str | None = None) -> VoiceprintData:
        return VoiceprintData(
            name=name,
            model_id=self.model_id,
            model_name=self.model_name,
            embedding=self.embedding,
            segments=self.pieces,
            speech_seconds=round(self.speech_seconds, 2),
            user_id=user_id,
            scoring=dict(self.scoring),
        )


def speech_regions(audio: np.ndarray, vad: SileroModel) -> list[tuple[int, int]]:
    """(start, end) sample indices of the speech the pipeline's own VAD finds, without padding."""
    seg = Segmenter(vad.new_stream(), SegmenterOptions(speech_pad_ms=0))
    found = [e for e in seg.push(np.asarray(audio, np.float32)) if isinstance(e, Segment)]
    found += [e for e in seg.finish() if isinstance(e, Segment)]
    out = []
    for s in found:
        lo, hi = max(0, round(s.start * SAMPLE_RATE)), min(len(audio), round(s.end * SAMPLE_RATE))
        if hi > lo:
            out.append((lo, hi))
    return out


class SpeechMeter:
    """Net speech measured as enrolment audio arrives, for progress ("7.5 of 10 s").

    ``add`` takes any stretch of 16 kHz audio (a live segment, a file) and returns the total so far.
    """

    def __init__(self, vad: SileroModel | None = None, needed: float = 10.0) -> None:
        self.vad = vad or SileroModel()
        self.needed = needed
        self.seconds = 0.0

    def add(self, audio: np.ndarray) -> float:
        return self.count(speech_regions(audio, self.vad))

    def count(self, regions: Sequence[tuple[int, int]]) -> float:
        """Add speech regions already found (``speech_regions``); returns the total so far."""
        self.seconds += sum(hi - lo for lo, hi in regions) / SAMPLE_RATE
        return self.seconds

    @property
    def enough(self) -> bool:
        return self.seconds >= self.needed

    @property
    def progress(self) -> float:
        return min(1.0, self.seconds / self.needed) if self.needed > 0 else 1.0


def net_speech(segments: Sequence[np.ndarray], vad: SileroModel | None = None) -> float:
    """Seconds of speech the VAD finds in the segments."""
    meter = SpeechMeter(vad)
    for a in segments:
        meter.add(a)
    return meter.seconds


def _dbfs(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else -math.inf


def _pieces(audio: np.ndarray, regions: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    speech = np.concatenate([audio[lo:hi] for lo, hi in regions]) if regions else np.zeros(0, np.float32)
    size = int(PIECE_SECONDS * SAMPLE_RATE)
    pieces = [speech[i : i + size] for i in range(0, len(speech), size)]
    if len(pieces) > 1 and len(pieces[-1]) < MIN_PIECE_SECONDS * SAMPLE_RATE:
        last = pieces.pop()
        pieces[-1] = np.concatenate([pieces[-1], last])
    return [p for p in pieces if len(p) >= MIN_PIECE_SECONDS * SAMPLE_RATE]


def _two_groups(embs: np.ndarray, weights: np.ndarray) -> tuple[list[int], list[int]] | None:
    """Average-linkage clustering of the pieces down to two groups."""
    if len(embs) < 2:
        return None
    clusters = [[i] for i in range(len(embs))]
    sim = embs @ embs.T
    while len(clusters) > 2:
        best, pair = -2.0, (0, 1)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = float(sim[np.ix_(clusters[a], clusters[b])].mean())
                if s > best:
                    best, pair = s, (a, b)
        a, b = pair
        clusters[a] += clusters.pop(b)
    return clusters[0], clusters[1]


def _centroid(embs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    c = (embs * weights[:, None]).sum(axis=0)
    n = np.linalg.norm(c)
    return c / n if n > 0 else c


def enroll(
    model: SpeakerModel,
    segments: Sequence[np.ndarray],
    *,
    min_speech: float = 10.0,
    vad: SileroModel | None = None,
    sources: Sequence[str] | None = None,
    regions: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> EnrollmentResult:
    """Build a voiceprint from speech (16 kHz mono float32 arrays: files, live segments).

    ``regions``, one list per segment, are its ``speech_regions`` when the caller already
    measured them (live enrolment does, for progress), so the VAD does not run twice.
    Raises EnrollmentError (gate ``silent``, ``quiet``, ``clipped``, ``too_little_speech`` or
    ``several_voices``) with a message for the user.
    """
    if regions is None:
        vad = vad or SileroModel()
    names = list(sources) if sources is not None else [f"segment {i + 1}" for i in range(len(segments))]
    total = 0.0
    all_pieces: list[np.ndarray] = []
    for i, (audio, label) in enumerate(zip(segments, names)):
        audio = np.asarray(audio, np.float32)
        peak = float(np.abs(audio).max()) if len(audio) else 0.0
        if peak == 0:
            found: Sequence[tuple[int, int]] = []
        else:
            found = regions[i] if regions is not None else speech_regions(audio, vad or SileroModel())
        if not found:
            if len(segments) == 1 or _dbfs(peak) < -50:
                raise EnrollmentError(
                    "silent",
                    f"no speech heard in {label} (peak {_dbfs(peak):.0f} dBFS)",
                    "record your voice speaking normally, close to the microphone",
                )
            continue
        speech = np.concatenate([audio[lo:hi] for lo, hi in found])
        clipped = float(np.mean(np.abs(speech) >= CLIP_LEVEL))
        if clipped > MAX_CLIPPED_FRACTION:
            raise EnrollmentError(
                "clipped",
                f"{label} is clipped ({100 * clipped:.1f}% of the speech is at full "
                "scale): a distorted voice makes a poor voiceprint",
                "lower the microphone gain or speak further from it, and record again",
            )
        level = _dbfs(float(np.sqrt(np.mean(speech**2))))
        if level < QUIET_DBFS:
            raise EnrollmentError(
                "quiet",
                f"{label} is nearly silent (speech at {level:.0f} dBFS)",
                "raise the microphone gain or speak closer to it, and record again",
            )
        total += len(speech) / SAMPLE_RATE
        all_pieces += _pieces(audio, found)
    if total < min_speech or not all_pieces:
        raise EnrollmentError(
            "too_little_speech",
            f"only {total:.1f} s of speech heard; enrolment needs {min_speech:g} s",
            "add more recordings of your voice (reading aloud works well)",
        )
    embs = model.embed_batch(all_pieces)
    weights = np.array([len(p) for p in all_pieces], np.float64) / SAMPLE_RATE
    groups = _two_groups(embs, weights)
    if groups is not None:
        a, b = groups
        ca, cb = _centroid(embs[a], weights[a]), _centroid(embs[b], weights[b])
        minor = min(weights[a].sum(), weights[b].sum())
        if float(ca @ cb) < SAME_VOICE and minor >= MINOR_VOICE_SECONDS:
            raise EnrollmentError(
                "several_voices",
                f"the recordings hold more than one voice ({weights[a].sum():.0f} s "
                f"and {weights[b].sum():.0f} s of speech that do not sound alike, "
                f"similarity {float(ca @ cb):.2f})",
                "enrol with recordings of one person only, without others talking",
            )
    voiceprint = _centroid(embs, weights).astype(np.float32)
    fits = embs @ voiceprint
    return EnrollmentResult(
        embedding=voiceprint,
        pieces=len(all_pieces),
        speech_seconds=total,
        consistency=float(fits.min()),
        model_id=model.model_id,
        model_name=model.info.name,
        scoring={"piece_seconds": PIECE_SECONDS, "piece_scores_mean": round(float(fits.mean()), 4)},
    )


def load_enrollment_audio(path: str | Path) -> np.ndarray:
    """A file as 16 kHz mono float32, with the usual clear errors for missing or broken files."""
    from faster_whisper.audio import decode_audio

    from bot.audio.files import probe_audio

    probe_audio(str(path))
    try:
        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:
        raise AudioInputError(f"cannot decode {path}: {exc}", "re-export the recording") from None
