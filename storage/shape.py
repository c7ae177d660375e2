"""The shape of a conversation, from its stored rows: who talked how much, turns, who answered
whom, silences, overlaps and interruptions, and what happened after each hint.

Pure and deterministic: the same utterance times give the same figures, with no model in the
way. It lives in ``storage`` beside the exports, which print it; the bot's summary and
``/log summary`` read it from here.

Definitions (call time, seconds):

* **talk time**: the union of a participant's own utterance intervals; **share**: their talk
  time over everyone's (shares add up to 1).
* **turn**: a run of consecutive utterances (in start order) by one speaker; the next turn's
  speaker *answered* the previous one's. The **longest stretch** is the longest turn, from its
  first word to its last.
* **silence**: a gap of at least ``silence_seconds`` in which nobody speaks, between the first
  speech and the last (the quiet before the call starts or after it ends is no silence).
* **overlap**: an utterance starting while another speaker's is still going; an
  **interruption** is an overlap after which the earlier speaker stops first (the newcomer
  takes the floor), as opposed to a backchannel ("yeah") under someone who keeps talking.
* **hint outcome**: a hint (the suggestions sent at one moment) is *followed* when somebody
  starts speaking within ``resume_seconds`` after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

SILENCE_SECONDS = 3.0
RESUME_SECONDS = 30.0


@dataclass(frozen=True)
class Spoken:
    """One utterance as the shape sees it."""

    id: int
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class HintAt:
    at: float
    text: str


@dataclass(frozen=True)
class Stretch:
    speaker: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ParticipantShape:
    name: str
    talk_seconds: float
    share: float  # of everyone's talk time, 0..1
    turns: int
    utterances: int
    longest_turn_seconds: float


@dataclass(frozen=True)
class Pair:
    """``speaker`` answered (or interrupted) ``other`` ``count`` times."""

    speaker: str
    other: str
    count: int


@dataclass(frozen=True)
class Gap:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Overlap:
    at: float  # when the second speaker started
    speaker: str  # who started speaking over
    over: str  # whose speech was still going
    seconds: float  # how long both spoke
    interruption: bool


@dataclass(frozen=True)
class HintOutcome:
    at: float
    texts: tuple[str, ...]
    resumed: bool
    resumed_after: float | None  # seconds from the hint to the next speech
    by: str | None  # who spoke first after it


@dataclass(frozen=True)
class Shape:
    duration: float  # from the first speech to the last
    speech_seconds: float  # time anyone was speaking (union)
    participants: list[ParticipantShape]  # most talk first
    turns: int
    longest: Stretch | None
    answers: list[Pair]  # most frequent first
    silences: list[Gap]
    overlaps: list[Overlap]
    hints: list[HintOutcome]
    silence_seconds: float  # the threshold used
    resume_seconds: float

    @property
    def longest_silence(self) -> Gap | None:
        return max(self.silences, key=lambda g: (g.seconds, -g.start), default=None)

    @property
    def interruptions(self) -> list[Overlap]:
        return [o for o in self.overlaps if o.interruption]

    @property
    def interrupters(self) -> list[Pair]:
        """Who interrupted whom, most often first."""
        return _pairs(Counter((o.speaker, o.over) for o in self.interruptions))


def _pairs(counts: Counter[tuple[str, str]]) -> list[Pair]:
    return [Pair(a, b, n) for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _total(intervals: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def conversation_shape(
    spoken: list[Spoken],
    hints: list[HintAt] | None = None,
    *,
    names: list[str] | None = None,
    silence_seconds: float = SILENCE_SECONDS,
    resume_seconds: float = RESUME_SECONDS,
) -> Shape:
    """The shape of a call with these utterances (any order) and hints. ``names``: everyone in
    the call, so a participant who never spoke is listed with zero."""
    order = sorted(spoken, key=lambda u: (u.start, u.id))
    everyone = _union([(u.start, u.end) for u in order])

    # Turns: runs of one speaker.
    turns: list[Stretch] = []
    counts: Counter[str] = Counter()
    for u in order:
        counts[u.speaker] += 1
        if turns and turns[-1].speaker == u.speaker:
            last = turns[-1]
            turns[-1] = Stretch(u.speaker, last.start, max(last.end, u.end))
        else:
            turns.append(Stretch(u.speaker, u.start, u.end))
    answers = _pairs(Counter((b.speaker, a.speaker) for a, b in zip(turns, turns[1:])))

    talk = {name: _total(_union([(u.start, u.end) for u in order if u.speaker == name])) for name in counts}
    all_talk = sum(talk.values())
    listed = list(dict.fromkeys([*(names or []), *counts]))
    participants = [
        ParticipantShape(
            name=name,
            talk_seconds=talk.get(name, 0.0),
            share=talk.get(name, 0.0) / all_talk if all_talk else 0.0,
            turns=sum(1 for t in turns if t.speaker == name),
            utterances=counts.get(name, 0),
            longest_turn_seconds=max((t.seconds for t in turns if t.speaker == name), default=0.0),
        )
        for name in listed
    ]
    participants.sort(key=lambda p: (-p.talk_seconds, listed.index(p.name)))

    silences = [Gap(a[1], b[0]) for a, b in zip(everyone, everyone[1:]) if b[0] - a[1] >= silence_seconds]

    # Overlaps: a sweep over utterances in start order, keeping those still going.
    overlaps: list[Overlap] = []
    going: list[Spoken] = []
    for u in order:
        going = [v for v in going if v.end > u.start]
        for v in going:
            if v.speaker != u.speaker and v.start < u.start:
                overlaps.append(
                    Overlap(
                        at=u.start,
                        speaker=u.speaker,
                        over=v.speaker,
                        seconds=min(u.end, v.end) - u.start,
                        interruption=v.end < u.end,
                    )
                )
        going.append(u)

    outcomes: list[HintOutcome] = []
    by_moment: dict[float, list[str]] = {}
    for h in sorted(hints or [], key=lambda h: h.at):
        by_moment.setdefault(h.at, []).append(h.text)
    for at, texts in by_moment.items():
        nxt = next((u for u in order if u.start >= at), None)
        resumed = nxt is not None and nxt.start - at <= resume_seconds
        outcomes.append(
            HintOutcome(
                at=at,
                texts=tuple(texts),
                resumed=resumed,
                resumed_after=(nxt.start - at) if nxt is not None and resumed else None,
                by=nxt.speaker if nxt is not None and resumed else None,
            )
        )

    return Shape(
        duration=(everyone[-1][1] - everyone[0][0]) if everyone else 0.0,
        speech_seconds=_total(everyone),
        participants=participants,
        turns=len(turns),
        longest=max(turns, key=lambda t: (t.seconds, -t.start), default=None),
        answers=answers,
        silences=silences,
        overlaps=overlaps,
        hints=outcomes,
        silence_seconds=silence_seconds,
        resume_seconds=resume_seconds,
    )
