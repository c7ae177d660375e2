"""What Whisper is told before each utterance: the call's recent lines and its vocabulary.

Whisper decodes better with the words that came before (names, rare words, the topic): a
long file is decoded window after window, each conditioned on the text of the one before.
S-Talk transcribes each utterance alone, so it rebuilds that context from the same call:
the last few lines said before the utterance began, by anyone, with the speaker's own last
lines kept in. Prompts have known failures, guarded against here and in the transcriber:

* a line flagged as a hallucination never reaches the context (only kept transcripts are
  added), nor does a repetitive one (a loop carried forward starts the next loop);
* the same line twice is kept once, so a repeated phrase does not grow its own weight;
* the context is bounded (lines here, tokens in the transcriber), and only lines in the
  language the utterance is decoded in are used;
* an output that merely repeats the prompt (an echo) is decoded again without it
  (``is_echo``, applied by the transcriber).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import deque
from dataclasses import dataclass

from storage.script import has_han

# A kept transcript more repetitive than this (gzip ratio) is not worth conditioning on:
# Whisper's own fallback starts at 2.4, and text between the two is usually a half-loop.
_REPETITIVE = 2.0
# An echo: at least this share of the output's n-grams are found in the prompt.
_ECHO_SHARE = 0.6
_ECHO_MIN_WORDS = 4  # written with spaces
_ECHO_MIN_CHARS = 6  # written without (Chinese, Japanese)


@dataclass(frozen=True)
class ContextOptions:
    enabled: bool = True  # asr.context is off by default; the options, when asked for, are these
    lines: int = 4  # recent lines of the call, any speaker
    own_lines: int = 1  # the speaker's own last lines, kept even when others spoke since
    others: bool = True  # False: the speaker's own lines only, as Whisper conditions a track on itself
    memory: int = 32  # lines remembered per call


@dataclass(frozen=True)
class Line:
    speaker: str
    start: float
    end: float
    language: str
    text: str


class CallContext:
    """The call's recent kept lines, shared by its workers (thread-safe)."""

    def __init__(self, options: ContextOptions = ContextOptions()) -> None:
        self.options = options
        self._lines: deque[Line] = deque(maxlen=max(options.memory, options.lines))
        self._lock = threading.Lock()

    def add(self, line: Line, compression_ratio: float = 0.0) -> bool:
        """Remember a kept transcript; False when it is not fit to condition on."""
        text = line.text.strip()
        if not self.options.enabled or not text or compression_ratio > _REPETITIVE:
            return False
        with self._lock:
            if any(_fold(old.text) == _fold(text) for old in self._lines):
                return False
            self._lines.append(line)
            # Transcripts finish out of order (two workers): keep call-time order.
            if len(self._lines) > 1 and self._lines[-2].start > line.start:
                ordered = sorted(self._lines, key=lambda x: x.start)
                self._lines.clear()
                self._lines.extend(ordered)
        return True

    def forget(self, speaker: str) -> None:
        """Drop a participant's lines (``/forget``): their words condition nothing more."""
        with self._lock:
            kept = [x for x in self._lines if x.speaker != speaker]
            self._lines.clear()
            self._lines.extend(kept)

    def before(self, speaker: str, start: float) -> tuple[Line, ...]:
        """The lines that condition an utterance of ``speaker`` beginning at ``start``, oldest first."""
        if not self.options.enabled:
            return ()
        with self._lock:
            earlier = [x for x in self._lines if x.start < start and (self.options.others or x.speaker == speaker)]
        chosen = earlier[-self.options.lines :]
        own = [x for x in earlier if x.speaker == speaker][-self.options.own_lines :] if self.options.own_lines else []
        missing = [x for x in own if x not in chosen]
        return tuple(sorted(missing + chosen, key=lambda x: x.start))


def prompt_text(lines: tuple[Line, ...] | list[Line], language: str) -> str:
    """The previous-text prompt for an utterance decoded in ``language``."""
    return " ".join(x.text.strip() for x in lines if x.language == language and x.text.strip())


def _fold(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def _grams(text: str) -> list[str]:
    """Word trigrams, or character 4-grams for text of fewer words (Chinese, Japanese: no spaces)."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())
    if len(words) >= 3:
        return [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
    folded = _fold(text)
    return [folded[i : i + 4] for i in range(max(len(folded) - 3, 0))]


def is_echo(output: str, prompt: str) -> bool:
    """Whether ``output`` repeats the prompt rather than transcribing new speech.

    Whisper, given a prompt and audio it cannot read, sometimes writes the prompt back. A
    short output ("yes", "thank you") can rightly recur and is never called an echo."""
    out = _fold(output)
    long_enough = len(out) >= _ECHO_MIN_CHARS if has_han(out) else len(re.findall(r"\w+", output)) >= _ECHO_MIN_WORDS
    if not prompt or not long_enough:
        return False
    if out in _fold(prompt):
        return True
    grams = _grams(output)
    known = set(_grams(prompt))
    return bool(grams) and sum(g in known for g in grams) / len(grams) >= _ECHO_SHARE
