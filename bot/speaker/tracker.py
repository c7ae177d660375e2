"""Per-utterance verdicts on one participant's stream, using the evidence of neighbours.

A single short utterance can score low for its true speaker (a cough, a laugh, a noisy
second). So an utterance's verdict pools its score with those of up to ``context``
neighbouring utterances on each side, each weighted by how much it sounds like the same
voice (their embeddings agree) and by its length; a guest's utterance next to the owner's does not borrow the owner's evidence,
while a noisy utterance of the owner does. A late neighbour can therefore change an
earlier verdict: ``add`` reports which ones changed.

Utterances that fail are clustered online per stream: a consistent second voice becomes
"guest on <owner>'s mic" (a third "guest 2 on ..."), or takes the name of another enrolled
user whose voiceprint it matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from storage.vocab import Verification

# Two utterances (or an utterance and a group's centroid) are taken as one voice from this
# cosine. From the calibration run on the shared speakers (CAM++): 4 s pieces of one
# speaker score 0.51 at the least, of different speakers 0.43 at most.
SAME_VOICE = 0.45
# A neighbour's evidence counts in proportion to how alike the two utterances sound: not at
# all below LOW (short pieces of different speakers: 95% under 0.31), fully from HIGH (short
# pieces of the same speaker: median 0.63). Short utterances are what need the help.
ALIKE_LOW, ALIKE_HIGH = 0.3, 0.6
NEIGHBOUR_WINDOW = 120.0  # seconds; evidence further away says little about this utterance


@dataclass(frozen=True)
class Verdict:
    verification: Verification
    score: float | None  # this utterance's own cosine score against its participant's voiceprint
    label: str | None = None  # who it sounds like when not the participant
    evidence: float | None = None  # the pooled score the verdict was decided on

    @property
    def verified(self) -> bool | None:
        return {Verification.VERIFIED: True, Verification.MISMATCH: False}.get(self.verification)

    def same_as(self, other: Verdict) -> bool:
        return self.verification == other.verification and self.label == other.label


@dataclass(eq=False)
class Judged:
    """One utterance as the tracker knows it; ``utterance_id`` is set once stored."""

    token: int
    start: float
    end: float
    embedding: np.ndarray | None
    score: float | None
    verdict: Verdict
    utterance_id: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class StreamTracker:
    owner: str
    voiceprint: np.ndarray | None
    threshold: float
    others: Mapping[str, np.ndarray] = field(default_factory=dict)  # other enrolled users, same model
    context: int = 2
    min_seconds: float = 1.0
    items: list[Judged] = field(default_factory=list)
    _tokens: itertools.count = field(default_factory=itertools.count)

    def add(self, start: float, end: float, embedding: np.ndarray | None) -> tuple[Judged, list[Judged]]:
        """Judge a new utterance; returns it and the earlier utterances whose verdict changed."""
        judgeable = embedding is not None and end - start >= self.min_seconds
        score = float(embedding @ self.voiceprint) if judgeable and self.voiceprint is not None else None
        item = Judged(
            next(self._tokens),
            start,
            end,
            embedding if judgeable else None,
            score,
            Verdict(Verification.UNKNOWN, score),
        )
        self.items.append(item)
        self.items.sort(key=lambda j: (j.start, j.token))
        before = {id(j): j.verdict for j in self.items}
        self._decide()
        changed = [j for j in self.items if j is not item and not before[id(j)].same_as(j.verdict)]
        return item, changed

    def set_voiceprint(self, voiceprint: np.ndarray) -> None:
        """The owner enrolled during the call: earlier utterances are scored too (their new
        verdicts are reported with the next ``add``)."""
        self.voiceprint = voiceprint
        for j in self.items:
            if j.embedding is not None:
                j.score = float(j.embedding @ voiceprint)

    # -- deciding ---------------------------------------------------------------------------

    def _neighbours(self, judged: list[Judged], k: int) -> list[tuple[Judged, float]]:
        """Nearby utterances with the weight their evidence gets for ``judged[k]``."""
        me = judged[k]
        near = judged[max(0, k - self.context) : k] + judged[k + 1 : k + 1 + self.context]
        out = []
        for j in near:
            if j.score is None or j.embedding is None or me.embedding is None:
                continue
            alike = (float(j.embedding @ me.embedding) - ALIKE_LOW) / (ALIKE_HIGH - ALIKE_LOW)
            if abs(j.start - me.start) <= NEIGHBOUR_WINDOW and alike > 0:
                out.append((j, min(alike, 1.0)))
        return out

    def _decide(self) -> None:
        for item in self.items:
            if item.embedding is None:
                item.verdict = Verdict(Verification.UNKNOWN, None)
        judged = [j for j in self.items if j.embedding is not None]
        for k, item in enumerate(judged):
            if item.score is None:  # no voiceprint for this participant: say who it is if we can
                assert item.embedding is not None
                item.verdict = Verdict(Verification.UNKNOWN, None, self._match_other(item.embedding))
                continue
            pool = [(item, 1.0)] + (self._neighbours(judged, k) if self.context else [])
            w = np.array([a * min(j.duration, 10.0) for j, a in pool])
            evidence = float(np.dot(w, [j.score or 0.0 for j, _ in pool]) / w.sum())  # pooled: all scored
            verification = Verification.VERIFIED if evidence >= self.threshold else Verification.MISMATCH
            item.verdict = Verdict(verification, item.score, None, round(evidence, 4))
        self._label_mismatches()

    def _match_other(self, embedding: np.ndarray) -> str | None:
        best, name = -1.0, None
        for other, vp in self.others.items():
            s = float(embedding @ vp)
            if other != self.owner and s > best:
                best, name = s, other
        return name if best >= self.threshold else None

    def _label_mismatches(self) -> None:
        """Online clustering of the failing utterances, in call order."""
        clusters: list[tuple[np.ndarray, list[Judged]]] = []
        for item in self.items:
            if item.verdict.verification != Verification.MISMATCH or item.embedding is None:
                continue
            sims = [float(item.embedding @ (c / np.linalg.norm(c))) for c, _ in clusters]
            if sims and max(sims) >= SAME_VOICE:
                k = int(np.argmax(sims))
                clusters[k] = (clusters[k][0] + item.embedding * min(item.duration, 10.0), clusters[k][1] + [item])
            else:
                clusters.append((item.embedding * min(item.duration, 10.0), [item]))
        guest = 0
        for centroid, members in clusters:
            name = self._match_other(centroid / np.linalg.norm(centroid))
            if name is None:
                guest += 1
                name = f"guest on {self.owner}'s mic" if guest == 1 else f"guest {guest} on {self.owner}'s mic"
            for m in members:
                m.verdict = replace(m.verdict, label=name)
