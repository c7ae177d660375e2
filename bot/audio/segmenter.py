"""Cuts one participant's 16 kHz stream into utterances from per-window VAD probabilities.

Positions are absolute sample indices at 16 kHz in call time, so a segment's times stay
right however the stream was delivered (blocks of any size, gaps where the source sent
nothing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bot.audio.vad import SAMPLE_RATE, WINDOW, VadStream


@dataclass(frozen=True)
class SegmenterOptions:
    threshold: float = 0.5
    min_silence_ms: int = 500
    min_speech_ms: int = 250
    max_utterance_s: float = 15.0
    speech_pad_ms: int = 200
    # After this much silence (less than min_silence_ms; 0: never) the utterance so far is
    # offered for an early transcription (``Tentative``), kept if the utterance does end there.
    early_ms: int = 0

    @classmethod
    def from_config(cls, vad) -> SegmenterOptions:
        return cls(
            threshold=vad.threshold,
            min_silence_ms=vad.min_silence_ms,
            min_speech_ms=vad.min_speech_ms,
            max_utterance_s=vad.max_utterance_s,
            speech_pad_ms=vad.speech_pad_ms,
            early_ms=vad.early_ms,
        )


@dataclass(frozen=True)
class SpeechStarted:
    at: float


@dataclass(frozen=True)
class SpeechEnded:
    at: float


@dataclass(frozen=True)
class Segment:
    """One utterance: ``start``/``end`` bound the speech; ``audio`` adds padding around it."""

    start: float
    end: float
    audio: np.ndarray
    audio_start: float
    ready_at: float  # call time at which the end of the utterance was known
    split: bool = False  # cut by the maximum length, speech goes on

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Tentative:
    """The utterance as it will be if it ends in the silence that has begun: the ``Segment`` it
    would become (with the ``ready_at`` of this offer), before ``min_silence`` has passed. A
    later ``Segment`` with the same times and audio is that utterance; one that differs
    (speech resumed) means this one never happened."""

    segment: Segment


Event = SpeechStarted | SpeechEnded | Segment | Tentative


def _t(index: int) -> float:
    return index / SAMPLE_RATE


class Segmenter:
    # Below threshold - 0.15 counts as silence; in between neither extends nor ends speech
    # (the hysteresis Silero's authors recommend), so a soft syllable doesn't cut a word.
    HYSTERESIS = 0.15
    # Gaps at least this long reset the VAD's recurrent state: it has not heard the gap.
    RESET_GAP = SAMPLE_RATE

    def __init__(self, vad: VadStream, options: SegmenterOptions = SegmenterOptions(), start_index: int = 0) -> None:
        self.vad = vad
        self.opt = options
        self._neg = max(options.threshold - self.HYSTERESIS, 0.01)
        self._onset = options.threshold * 0.3
        self._min_silence = options.min_silence_ms * SAMPLE_RATE // 1000
        self._min_speech = options.min_speech_ms * SAMPLE_RATE // 1000
        self._max_len = int(options.max_utterance_s * SAMPLE_RATE)
        self._pad = options.speech_pad_ms * SAMPLE_RATE // 1000
        self._pending = np.zeros(0, np.float32)
        self._pos = start_index  # absolute index of _pending[0]
        # Processed windows kept for the current utterance (or the pre-roll when idle).
        self._windows: deque[tuple[int, np.ndarray, float]] = deque()
        # Idle history: the pre-roll pad, and enough to trace a soft onset back (see _window).
        self._idle_keep = max(1, -(-max(self._pad, SAMPLE_RATE // 2) // WINDOW))
        self._speaking = False
        self._announced = False
        self._speech_start = 0
        self._last_speech_end = 0
        self._silence_start: int | None = None
        self._early = options.early_ms * SAMPLE_RATE // 1000
        self._offered = False  # a Tentative for the current silence has been yielded

    @property
    def position(self) -> float:
        """Call time up to which audio has been received."""
        return _t(self._pos + len(self._pending))

    def push(self, audio: np.ndarray) -> Iterator[Event]:
        """Add contiguous 16 kHz mono audio; yields the events it completes."""
        if len(audio) == 0:
            return
        data = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        n = len(data) // WINDOW
        self._pending = data[n * WINDOW :].copy()
        if n == 0:
            return
        probs = self.vad.probabilities(data[: n * WINDOW])
        for i in range(n):
            start = self._pos + i * WINDOW
            yield from self._window(start, data[i * WINDOW : (i + 1) * WINDOW], float(probs[i]))
        self._pos += n * WINDOW

    def skip_to(self, index: int) -> Iterator[Event]:
        """The source sent nothing until ``index``: that stretch is silence."""
        resume = index
        if len(self._pending):
            # Score the partial window as it would have been heard: followed by silence.
            yield from self.push(np.zeros(WINDOW - len(self._pending), np.float32))
        gap = resume - self._pos
        if gap <= 0:
            return
        if self._speaking:
            if self._silence_start is None:
                self._silence_start = self._pos
            if resume - self._silence_start >= self._min_silence:
                yield from self._finish(ready=self._silence_start + self._min_silence)
        if gap >= self.RESET_GAP:
            self.vad.reset()
        if not self._speaking:
            self._windows.clear()
        else:
            # Speech resumed within min_silence: keep the utterance whole, filling the gap.
            filler = np.zeros(gap, np.float32)
            for off in range(0, gap - gap % WINDOW, WINDOW):
                self._windows.append((self._pos + off, filler[off : off + WINDOW], 0.0))
            resume = self._pos + (gap - gap % WINDOW)
            if gap % WINDOW:
                self._pending = filler[: gap % WINDOW]
        self._pos = resume

    def silent_until(self, index: int) -> Iterator[Event]:
        """The source is known to be silent up to ``index`` (it sent nothing, and anything it
        sends later starts after that): end an open utterance once ``min_silence`` of that
        silence has passed, without scoring the silence or moving ``position``. The gap is
        left for the next ``push`` after ``skip_to``, so what follows is exactly what
        ``skip_to`` alone would have done; speech that resumes sooner continues the same
        utterance."""
        if not self._speaking or index <= self._pos:
            return
        if len(self._pending):
            # The partial window, followed by silence: what skip_to would score it as.
            yield from self.push(np.zeros(WINDOW - len(self._pending), np.float32))
            if not self._speaking:
                return
        if self._silence_start is None:
            self._silence_start = self._pos
        pad_to = self._last_speech_end + self._pad
        if index - self._silence_start >= self._min_silence:
            yield from self._finish(ready=self._silence_start + self._min_silence, pad_to=pad_to)
        elif index - self._silence_start >= self._early:
            yield from self._offer(ready=self._silence_start + self._early, pad_to=pad_to)

    def finish(self, at_index: int | None = None) -> Iterator[Event]:
        """End of stream: close an open utterance."""
        if len(self._pending):
            yield from self.push(np.zeros(WINDOW - len(self._pending), np.float32))
        if self._speaking:
            yield from self._finish(ready=self._pos if at_index is None else max(at_index, self._pos))

    def _window(self, start: int, audio: np.ndarray, p: float) -> Iterator[Event]:
        end = start + WINDOW
        self._windows.append((start, audio, p))
        if not self._speaking:
            if p >= self.opt.threshold:
                self._speaking = True
                self._announced = False
                # Speech often begins softly ("and I'm ..."): the onset is where the
                # probability began its rise to this window, up to half a second back.
                onset = start
                for s, _, q in reversed(list(self._windows)[:-1]):
                    if q < self._onset or s != onset - WINDOW:
                        break
                    onset = s
                self._speech_start = onset
                self._last_speech_end = end
                self._silence_start = None
            else:
                while len(self._windows) > self._idle_keep:
                    self._windows.popleft()
            return
        if p >= self.opt.threshold:
            self._last_speech_end = end
            self._silence_start = None
        elif p < self._neg and self._silence_start is None:
            self._silence_start = start
        if not self._announced and self._last_speech_end - self._speech_start >= self._min_speech:
            self._announced = True
            yield SpeechStarted(_t(self._speech_start))
        if p >= self.opt.threshold:
            self._offered = False  # speech again: a new silence may be offered
        if self._silence_start is not None and end - self._silence_start >= self._min_silence:
            yield from self._finish(ready=end)
        elif end - self._speech_start >= self._max_len:
            yield from self._split(ready=end)
        elif self._silence_start is not None and end - self._silence_start >= self._early:
            yield from self._offer(ready=end)

    def _audio(self, lo: int, hi: int) -> tuple[np.ndarray, int]:
        parts = [(s, a) for s, a, _ in self._windows if s + WINDOW > lo and s < hi]
        if not parts:
            return np.zeros(0, np.float32), lo
        first = parts[0][0]
        joined = np.concatenate([a for _, a in parts])
        lo = max(lo, first)
        return joined[lo - first : hi - first].copy(), lo

    def _offer(self, ready: int, pad_to: int | None = None) -> Iterator[Event]:
        """A Tentative, once per silence, when all the audio the segment will hold is here (the
        padding after the last word included) and the utterance is long enough to be kept."""
        if not self._early or self._offered:
            return
        start, end = self._speech_start, self._last_speech_end
        # ``ready`` is how far audio has come in (unless the rest is known silence, ``pad_to``).
        if end - start < self._min_speech or (pad_to is None and ready < end + self._pad):
            return
        self._offered = True
        audio, audio_start = self._segment_audio(pad_to)
        yield Tentative(Segment(_t(start), _t(end), audio, _t(audio_start), _t(ready)))

    def _segment_audio(self, pad_to: int | None) -> tuple[np.ndarray, int]:
        start, end = self._speech_start, self._last_speech_end
        audio, audio_start = self._audio(start - self._pad, end + self._pad)
        if pad_to is not None and audio_start + len(audio) < pad_to:
            audio = np.concatenate([audio, np.zeros(pad_to - audio_start - len(audio), np.float32)])
        return audio, audio_start

    def _finish(self, ready: int, pad_to: int | None = None) -> Iterator[Event]:
        """``pad_to``: the stream is known silent up to there, so the audio ends in silence up
        to it even where nothing was received (the padding Whisper gets after the last word)."""
        start, end = self._speech_start, self._last_speech_end
        self._speaking = False
        self._offered = False
        if end - start >= self._min_speech:
            audio, audio_start = self._segment_audio(pad_to)
            yield Segment(_t(start), _t(end), audio, _t(audio_start), _t(ready))
            yield SpeechEnded(_t(end))
        elif self._announced:
            yield SpeechEnded(_t(end))
        self._announced = False
        self._silence_start = None
        while len(self._windows) > self._idle_keep:
            self._windows.popleft()

    def _split(self, ready: int) -> Iterator[Event]:
        """Cut at the quietest point of the last third so words are not chopped."""
        search_from = self._speech_start + 2 * self._max_len // 3
        candidates = [(s, p) for s, _, p in self._windows if s >= search_from]
        probs = np.array([p for _, p in candidates])
        # Smooth over three windows: one low window inside a word is not a pause.
        smooth = np.convolve(probs, np.ones(3) / 3, mode="same") if len(probs) >= 3 else probs
        cut = candidates[int(np.argmin(smooth))][0]
        audio, audio_start = self._audio(self._speech_start - self._pad, cut)
        yield Segment(_t(self._speech_start), _t(cut), audio, _t(audio_start), _t(ready), split=True)
        self._offered = False
        self._speech_start = cut
        self._last_speech_end = max(self._last_speech_end, cut)
        while self._windows and self._windows[0][0] < cut:
            self._windows.popleft()
