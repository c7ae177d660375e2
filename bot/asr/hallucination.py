"""Whisper's known inventions on silence and noise.

Trained on subtitled video, Whisper fills non-speech with the credits it saw most:
"Thanks for watching", "시청해주셔서 감사합니다", "MBC 뉴스 ...입니다", Amara subtitle lines.
It also loops on a phrase when decoding derails. A call transcript is better without them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Normalised (see _normalise) phrases; a transcript made only of these is dropped.
KNOWN_PHRASES = (
    "thanks for watching", "thank you for watching", "thank you so much for watching",
    "thanks for watching and see you next time", "please subscribe", "like and subscribe",
    "subscribe to my channel", "please like and subscribe", "see you in the next video",
    "subtitles by the amara org community", "transcribed by esoteric",
    "시청해주셔서 감사합니다", "시청해 주셔서 감사합니다", "구독과 좋아요 부탁드립니다", "구독과 좋아요",
    "좋아요와 구독 부탁드립니다", "다음 영상에서 만나요",
    "字幕由amara org社区提供", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "谢谢观看", "感谢观看",
    "ご視聴ありがとうございました", "チャンネル登録よろしくお願いします",
    "продолжение следует", "спасибо за просмотр", "субтитры создавал dimatorzok",
    "untertitel der amara org community", "vielen dank fürs zuschauen",
    "sous titres réalisés par la communauté d amara org", "merci d avoir regardé",
)
# Phrases that are never speech in a call, wherever they appear in the text.
_ALWAYS = [re.compile(p) for p in (
    r"mbc\s*뉴스", r"kbs\s*뉴스", r"sbs\s*뉴스", r"ytn\s*뉴스", r"amara\s*org", r"字幕由", r"字幕提供",
)]
# Short acknowledgements are real in a conversation; only drop them when Whisper itself
# doubts there was speech.
_WEAK = {"thank you", "감사합니다", "you", "bye"}


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class FilterOptions:
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    known_phrases: bool = True


def repeated_ngram(text: str, min_repeats: int = 4, max_n: int = 6) -> str | None:
    """The n-gram repeated back to back at least ``min_repeats`` times, if any."""
    words = _normalise(text).split()
    if len(words) < min_repeats:
        # CJK text has no spaces: look at characters instead.
        words = list(_normalise(text).replace(" ", ""))
    for n in range(1, max_n + 1):
        for i in range(0, len(words) - n * min_repeats + 1):
            gram = words[i:i + n]
            # A single word said four times ("no, no, no, no") is real speech; five is a loop.
            repeats = min_repeats + 1 if n == 1 else min_repeats
            if i + n * repeats > len(words):
                continue
            if all(words[i + k * n:i + (k + 1) * n] == gram for k in range(1, repeats)):
                return " ".join(gram)
    return None


def rejection_reason(text: str, *, avg_logprob: float, no_speech_prob: float, compression_ratio: float,
                     options: FilterOptions = FilterOptions()) -> str | None:
    """Why this transcript should not be stored, or ``None`` to keep it."""
    norm = _normalise(text)
    if not norm:
        return "empty"
    if no_speech_prob > options.no_speech_threshold and avg_logprob < options.log_prob_threshold:
        return f"no speech (p={no_speech_prob:.2f}, logprob={avg_logprob:.2f})"
    if compression_ratio > options.compression_ratio_threshold:
        return f"repetitive (compression ratio {compression_ratio:.1f})"
    if not options.known_phrases:
        return None
    for pattern in _ALWAYS:
        if pattern.search(norm):
            return f"known hallucination ({pattern.pattern})"
    if norm in _WEAK:
        if no_speech_prob > 0.3 or avg_logprob < -0.8:
            return f"known hallucination ({norm!r} on doubtful audio)"
        return None
    if norm in KNOWN_PHRASES or norm.replace(" ", "") in {p.replace(" ", "") for p in KNOWN_PHRASES}:
        return f"known hallucination ({norm!r})"
    gram = repeated_ngram(text, min_repeats=4)
    if gram is not None:
        return f"repetition loop ({gram!r} over and over)"
    return None
