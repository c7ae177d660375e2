"""Awkwardness from what is said, not only from silence.

A silence of a few seconds is normal after a lively exchange and awkward after some
exchanges. The signals here say which, so that the lull detector can help sooner (and the
hint can say why):

- ``monologue``: one person did nearly all the talking in the stretch before the silence
  (share of speech time, from voice activity).
- ``short-answers``: the last few lines were a word or two each, after longer ones
  (word counts from the transcript).
- ``backchannels``: since the last real line only "yeah", "mm", "응", "네" and the like were
  said. These keep the voice activity busy, so a silence detector never fires; here they do
  not count as speech (the lull detector's backchannel lull).
- ``unanswered-question``: the last real line was a question and nobody answered it (silence,
  or only backchannels).
- ``flagging``: turn rate and turn length both dropping (voice activity; the older signal).

Transcripts come a second or two after speech ends, so a content signal is only judged once
the speech before the silence has been transcribed (``covered``); until then the silence
counts as plain silence.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from bot.hints.state import Stretch

_TOKEN = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


class Signal(StrEnum):
    FLAGGING = "flagging"
    MONOLOGUE = "monologue"
    SHORT_ANSWERS = "short-answers"
    BACKCHANNELS = "backchannels"
    UNANSWERED = "unanswered-question"


# Words that acknowledge without adding anything. A line made only of these (at most four of
# them) is a backchannel: "Yeah.", "Mm-hmm.", "Oh, I see.", "응 응", "아 네".
_BACKCHANNEL_WORDS = frozenset(
    """
yeah yea yes yep yup ya uh-huh uh huh mhm mm mmm mm-hmm mhmm hmm hm um uhm ah oh ooh okay ok k right sure
alright true cool wow nice really i see gotcha got it totally exactly indeed
응 응응 어 어어 네 네네 예 예예 음 음음 아 아아 오 와 그래 그래요 그렇구나 그렇군요 그치 그쵸 맞아 맞아요 맞네
아하 헐 진짜 진짜요 그러게 그러게요 좋아 좋아요 글쿠나 넹 넵 웅 흠
""".split()
)
_BACKCHANNEL_MAX_WORDS = 4

# Korean questions that Whisper sometimes writes without a question mark.
_KO_QUESTION_ENDINGS = ("까", "나요", "가요", "니", "냐", "죠", "어때", "을까요", "ㄹ까")


def words(text: str) -> list[str]:
    return [w.lower() for w in _TOKEN.findall(unicodedata.normalize("NFKC", text))]


def is_backchannel(text: str) -> bool:
    ws = words(text)
    return 0 < len(ws) <= _BACKCHANNEL_MAX_WORDS and all(w in _BACKCHANNEL_WORDS for w in ws)


def is_question(text: str) -> bool:
    t = unicodedata.normalize("NFKC", text).strip().rstrip(".!…\"'”’) ")
    if t.endswith(("?", "？")):
        return True
    last = words(t)[-1:] if t else []
    return bool(last) and any("\uac00" <= c <= "\ud7a3" for c in last[0]) and last[0].endswith(_KO_QUESTION_ENDINGS)


@dataclass(frozen=True)
class Said:
    """One transcribed utterance, by speaker key."""

    key: str
    start: float
    end: float
    available_at: float  # call time the transcript existed
    text: str
    language: str | None = None

    @property
    def backchannel(self) -> bool:
        return is_backchannel(self.text)

    @property
    def words(self) -> int:
        return len(words(self.text))


@dataclass(frozen=True)
class SignalOptions:
    monologue: bool = False
    monologue_share: float = 0.8  # one person's share of speech time
    monologue_seconds: float = 30.0  # ... and at least this much speech by them in the window
    short_answers: bool = False
    short_words: int = 2  # a line this short (in words) is a short answer
    short_turns: int = 3  # how many short lines in a row
    long_words: float = 6.0  # the lines before them averaged at least this many words
    backchannels: bool = False
    backchannel_seconds: float = 8.0  # only backchannels since the last real line for this long
    unanswered: bool = False

    @property
    def content(self) -> bool:
        return self.short_answers or self.backchannels or self.unanswered


class SaidLog:
    """The transcribed lines of the call, kept for a while; thread-safe."""

    def __init__(self, keep_seconds: float = 600.0) -> None:
        self._lines: deque[Said] = deque()
        self._keep = keep_seconds
        self._lock = threading.Lock()

    def add(self, said: Said) -> None:
        with self._lock:
            self._lines.append(said)
            while self._lines and self._lines[0].end < said.end - self._keep:
                self._lines.popleft()

    def known(self, now: float, since: float) -> list[Said]:
        """Lines whose transcript existed at ``now`` and that ended after ``since``, by start."""
        with self._lock:
            return sorted((s for s in self._lines if s.available_at <= now and s.end > since), key=lambda s: s.start)


def _lines_of(stretch: Stretch, lines: list[Said]) -> list[Said]:
    """The transcript lines of one stretch of speech (same speaker, overlapping it)."""
    return [s for s in lines if s.key == stretch.key and s.start < stretch.end + 0.3 and s.end > stretch.start - 0.3]


def covered(stretch: Stretch, lines: list[Said]) -> bool:
    """Has the stretch been transcribed up to its end? (Utterance times come from the
    transcriber's own segmentation, close to but not exactly the voice-activity times.)"""
    return any(s.end >= stretch.end - 1.0 for s in _lines_of(stretch, lines))


def backchannel_start(stretches: list[Stretch], lines: list[Said]) -> tuple[float, float] | None:
    """(end of the last real speech, end of the last backchannel) when the latest stretches
    were all transcribed backchannels; None when the latest one was real speech or is not
    transcribed yet."""
    last_bc: float | None = None
    for s in reversed(stretches):
        mine = _lines_of(s, lines)
        if not covered(s, lines):
            return None
        if not all(x.backchannel for x in mine):
            return (s.end, last_bc) if last_bc is not None else None
        last_bc = s.end if last_bc is None else last_bc
    return None


def content_signals(
    opt: SignalOptions, silence: float, stretches: list[Stretch], lines: list[Said]
) -> tuple[Signal, ...] | None:
    """The content signals at a silence that began at ``silence``, from the stretches and the
    transcript lines known by now; None when the speech before the silence is not yet
    transcribed (judge again later)."""
    before = [s for s in stretches if s.end <= silence + 1e-6]
    if not before:
        return ()
    if not covered(before[-1], lines):
        return None
    said = [s for s in lines if s.end <= silence + 1.0]
    real = [s for s in said if not s.backchannel]
    out: list[Signal] = []
    if opt.unanswered and real:
        q = real[-1]
        answered = any(s.key != q.key and not s.backchannel and s.start > q.end - 0.3 for s in said)
        if is_question(q.text) and not answered:
            out.append(Signal.UNANSWERED)
    if opt.short_answers and len(real) > opt.short_turns:
        recent, earlier = real[-opt.short_turns :], real[: -opt.short_turns]
        short = all(s.words <= opt.short_words for s in recent)
        if short and len(earlier) >= 2 and sum(s.words for s in earlier) / len(earlier) >= opt.long_words:
            out.append(Signal.SHORT_ANSWERS)
    if opt.backchannels and said and said[-1].backchannel and backchannel_start(before, lines) is not None:
        out.append(Signal.BACKCHANNELS)
    return tuple(out)


def monologue(opt: SignalOptions, stretches: list[Stretch], silence: float, window: float) -> bool:
    """One person held the floor in the ``window`` before the silence."""
    lo = silence - window
    talk: dict[str, float] = {}
    for s in stretches:
        if s.end > lo and s.start < silence:
            talk[s.key] = talk.get(s.key, 0.0) + min(s.end, silence) - max(s.start, lo)
    total = sum(talk.values())
    if total <= 0:
        return False
    top = max(talk.values())
    return top >= opt.monologue_seconds and top / total >= opt.monologue_share
