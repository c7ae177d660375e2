"""Making model output safe to send: the transcript is untrusted, so is anything derived from it.

A suggestion leaves here as one line of plain text: no links, no Discord mentions (users,
roles, channels, @everyone/@here), no markdown or code, bounded in length. Text that only
echoes the transcript (an instruction spoken in the call repeated back, a speaker line
copied) or that is leftover JSON is rejected rather than cleaned.
"""

from __future__ import annotations

import re
import unicodedata

_URL = re.compile(
    r"(?i)\b(?:https?://|ftp://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|gg|ly|me|co|"
    r"xyz|info|app|dev|ru|kr|uk|de|link|site|online|shop|top|click)\b(?:/\S*)?"
)
_MENTION = re.compile(r"<(?:@[!&]?|#|/[\w -]+:)\d+>|@(?:everyone|here)\b|<a?:\w+:\d+>")
_AT = re.compile(r"@(?=\w)")
_MARKDOWN = re.compile(r"[`*_~|>#\[\]{}<>\\]")
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_SPEAKER_LABEL = re.compile(r"^\s*[\w .'-]{1,40}:\s")
_LIST_MARK = re.compile(r"^\s*(?:[-•*]|\d+[.)]|[a-z][.)])\s+")
_JSONISH = re.compile(r"[{}\[\]]|\"\s*:|\\n|suggestions?\"?\s*:")
_SMALL = re.compile(r"[\W_]+", re.UNICODE)


def _key(text: str) -> str:
    return _SMALL.sub("", unicodedata.normalize("NFKC", text).lower())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower()) if len(w) > 1}


def clean(text: str, max_chars: int) -> str:
    """One plain line: links and mentions removed, markdown stripped, whitespace collapsed, bounded."""
    text = unicodedata.normalize("NFKC", str(text))
    text = _CONTROL.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _AT.sub("", text)
    text = _MARKDOWN.sub(" ", text)
    text = _LIST_MARK.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" \"'“”‘’,;-")
    if len(text) > max_chars:
        cut = text[: max_chars - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > max_chars // 2 else cut).rstrip(" ,;:-") + "…"
    return text


def rejection(raw: str, cleaned: str, *, transcript: list[str], language: str, min_chars: int = 8) -> str | None:
    """Why a suggestion must not be sent, or None if it may."""
    if _JSONISH.search(raw):
        return "leftover JSON"
    if _SPEAKER_LABEL.match(raw):
        return "copies a transcript line"
    if len(cleaned) < min_chars or len(cleaned.split()) < (2 if language in ("ko", "ja", "zh") else 3):
        return "too short"  # a bare keyword or two ("fruit taken") is no suggestion"
    if _URL.search(raw) or _MENTION.search(raw):
        return "contained a link or a mention"
    if language == "ko" and not any("\uac00" <= ch <= "\ud7a3" for ch in cleaned):
        return "not in Korean"
    if language == "en" and any("\uac00" <= ch <= "\ud7a3" for ch in cleaned):
        return "not in English"
    key, words = _key(cleaned), _words(cleaned)
    for line in transcript:
        lk = _key(line)
        if len(key) >= 6 and (key in lk or (len(lk) >= 12 and lk in key)):
            return "echoes the transcript"
        lw = _words(line)
        if len(words) >= 4 and len(words & lw) >= 0.8 * len(words):
            return "echoes the transcript"
    return None


def same(a: str, b: str) -> bool:
    """Two suggestions that say the same thing (for not repeating oneself)."""
    ka, kb = _key(a), _key(b)
    if ka == kb:
        return True
    # Content words only: "What else about the storm?" and "What else about the lighthouse?" differ.
    from bot.hints.terms import content_words

    wa, wb = set(content_words(a)), set(content_words(b))
    return bool(wa and wb) and len(wa & wb) >= 0.75 * max(len(wa), len(wb))
