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
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "thanks for watching and see you next time",
    "please subscribe",
    "like and subscribe",
    "subscribe to my channel",
    "please like and subscribe",
    "see you in the next video",
    "please subscribe to my channel",
    "thank you very much for watching",
    "i ll see you in the next video",
    "don t forget to like and subscribe",
    "don t forget to subscribe",
    "subtitles by the amara org community",
    "transcribed by esoteric",
    "시청해주셔서 감사합니다",
    "시청해 주셔서 감사합니다",
    "구독과 좋아요 부탁드립니다",
    "구독과 좋아요",
    "좋아요와 구독 부탁드립니다",
    "다음 영상에서 만나요",
    "끝까지 시청해주셔서 감사합니다",
    "字幕由amara org社区提供",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "谢谢观看",
    "感谢观看",
    "谢谢大家观看",
    "明镜需要您的支持 欢迎订阅明镜",
    "ご視聴ありがとうございました",
    "チャンネル登録よろしくお願いします",
    "ご覧いただきありがとうございます",
    "продолжение следует",
    "спасибо за просмотр",
    "субтитры создавал dimatorzok",
    "untertitel der amara org community",
    "vielen dank fürs zuschauen",
    "sous titres réalisés par la communauté d amara org",
    "merci d avoir regardé",
)
# Phrases that are never speech in a call, wherever they appear in the text.
_ALWAYS = [
    re.compile(p)
    for p in (
        r"mbc\s*뉴스",
        r"kbs\s*뉴스",
        r"sbs\s*뉴스",
        r"ytn\s*뉴스",
        r"amara\s*org",
        r"字幕由",
        r"字幕提供",
        r"字幕\s*by",
        r"优优独播剧场",
        r"yoyo television series exclusive",
        r"dimatorzok",
    )
]
# Short acknowledgements are real in a conversation; only drop them when Whisper itself
# doubts there was speech.
_WEAK = {"thank you", "감사합니다", "you", "bye"}


_COMPACT_PHRASES = frozenset(p.replace(" ", "") for p in KNOWN_PHRASES)
_LONGEST = max(map(len, _COMPACT_PHRASES))


def _only_known_phrases(norm: str) -> bool:
    """Whether the text is one or more known phrases back to back ("Thanks for watching.
    Please subscribe.", "시청해주셔서 감사합니다. 구독과 좋아요 부탁드립니다."), spaces ignored."""
    compact = norm.replace(" ", "")
    ends = [True] + [False] * len(compact)  # ends[i]: compact[:i] splits into known phrases
    for i in range(1, len(compact) + 1):
        ends[i] = any(ends[j] and compact[j:i] in _COMPACT_PHRASES for j in range(max(0, i - _LONGEST), i))
    return ends[-1]


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


# Scripts written without spaces between words (Han, kana) and Hangul syllables: a loop in
# them is a run of characters ("哈哈哈哈哈", "아아아아아"), so each character is a token.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_IS_CJK = re.compile(f"[{_CJK}]")


def _tokens(text: str) -> list[str]:
    """Words, with CJK and Hangul split into characters; Latin words and numbers stay whole, so
    "Noooo!" or "555-5555" are not character loops."""
    return _TOKEN.findall(_normalise(text))


def repeated_ngram(text: str, min_repeats: int = 4, max_n: int = 6) -> str | None:
    """The n-gram of tokens (see ``_tokens``) repeated back to back at least ``min_repeats`` times, if any."""
    words = _tokens(text)
    if any(_IS_CJK.match(w) for w in words):
        # A CJK phrase is several characters long: allow as many tokens as a few words hold.
        max_n *= 3
    for n in range(1, max_n + 1):
        # A single word said four times ("no, no, no, no") is real speech; five is a loop.
        repeats = min_repeats + 1 if n == 1 else min_repeats
        for i in range(0, len(words) - n * repeats + 1):
            gram = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(1, repeats)):
                return _join(gram)
    return None


def _join(tokens: list[str]) -> str:
    out = ""
    for tok in tokens:
        if out and not (_IS_CJK.match(out[-1]) and _IS_CJK.match(tok)):
            out += " "
        out += tok
    return out


def rejection_reason(
    text: str,
    *,
    avg_logprob: float,
    no_speech_prob: float,
    compression_ratio: float,
    options: FilterOptions = FilterOptions(),
) -> str | None:
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
    if _only_known_phrases(norm):
        return f"known hallucination ({norm!r})"
    gram = repeated_ngram(text, min_repeats=4)
    if gram is not None:
        return f"repetition loop ({gram!r} over and over)"
    return None
