"""The shared real speakers arranged for speaker-verification trials (tests, calibration, benchmark)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from tests.calls import RATE, librispeech_files, load16k, shared

LIBRISPEECH = ["1688", "1998", "2033", "2414", "2609", "3005"]


@dataclass(frozen=True)
class Utt:
    speaker: str
    name: str
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


@cache
def librispeech() -> dict[str, list[Utt]]:
    return {spk: [Utt(f"ls-{spk}", f.stem, load16k(f)) for f in librispeech_files(spk)] for spk in LIBRISPEECH}


@cache
def others() -> dict[str, list[Utt]]:
    """speechbrain's and Picovoice's sample speakers (short and few utterances)."""
    out: dict[str, list[Utt]] = {}
    for f in sorted(shared("data", "misc", "speechbrain_asr").glob("*.wav")):
        spk = "sb-" + f.stem.split("_")[0]
        out.setdefault(spk, []).append(Utt(spk, f.stem, load16k(f)))
    for f in sorted(shared("data", "misc", "picovoice_eagle").glob("*.wav")):
        spk = "pv-" + "_".join(f.stem.split("_")[:2])
        out.setdefault(spk, []).append(Utt(spk, f.stem, load16k(f)))
    return out


def all_speakers() -> dict[str, list[Utt]]:
    return {**{f"ls-{k}": v for k, v in librispeech().items()}, **others()}


def enrolment_sets(utts: list[Utt], need: float = 14.0) -> list[tuple[list[Utt], list[Utt]]]:
    """Rotations: consecutive utterances from each start until ``need`` seconds; the rest are tests."""
    sets = []
    for r in range(len(utts)):
        chosen, total = [], 0.0
        for k in range(len(utts)):
            u = utts[(r + k) % len(utts)]
            chosen.append(u)
            total += u.seconds
            if total >= need:
                break
        rest = [u for u in utts if u not in chosen]
        if total >= need and rest:
            sets.append((chosen, rest))
    return sets
