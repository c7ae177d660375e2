"""Making model output safe to send: the transcript is untrusted, so is anything derived from it.

A suggestion leaves here as one line of plain text: no links, no Discord mentions (users,
roles, channels, @everyone/@here), no markdown or code, bounded in length. Text that only
echoes the transcript (an instruction spoken in the call repeated back, a speaker line
copied) or that is leftover JSON is rejected rather than cleaned.
"""

from __future__ import annotations

import re
import unicodedata

from storage.plaintext import has_link, has_mention, plain, shorten

# Removed from what is kept (replaced by a space, never joined up: joining is how
# "h@ttps://" became a link): mentions and markdown. Links are not removed but refused.
_MENTION = re.compile(r"<[@#/&!:a]?[^<>]{0,40}>|@\S*")
_MARKDOWN = re.compile(r"[`*_~|>#\[\]{}<>\\]")
_SPEAKER_LABEL = re.compile(r"^\s*[\w .'-]{1,40}:\s")
_LIST_MARK = re.compile(r"^\s*(?:[-•*]|\d+[.)]|[a-z][.)])\s+")
_JSONISH = re.compile(r"[{}\[\]]|\"\s*:|\\n|suggestions?\"?\s*:")
_SMALL = re.compile(r"[\W_]+", re.UNICODE)


def _key(text: str) -> str:
    return _SMALL.sub("", unicodedata.normalize("NFKC", text).lower())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower()) if len(w) > 1}


def clean(text: str, max_chars: int) -> str:
    """One plain line (``storage.plaintext.plain``): mentions and markdown replaced by spaces,
    whitespace collapsed, bounded. Links are not cleaned away: ``rejection`` refuses them."""
    text = plain(text, 4 * max_chars)
    text = _MENTION.sub(" ", text)
    text = _MARKDOWN.sub(" ", text)
    text = _LIST_MARK.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" \"'“”‘’,;:-")
    return shorten(text, max_chars)


def rejection(raw: str, cleaned: str, *, transcript: list[str], language: str, min_chars: int = 8) -> str | None:
    """Why a suggestion must not be sent, or None if it may."""
    # First: whatever else is wrong with it, a link or mention is the reason that matters.
    if has_link(raw) or has_link(cleaned) or has_mention(raw):
        return "contained a link or a mention"
    raw = plain(raw)  # what a reader would see of it: escape codes and invisible characters gone
    if _JSONISH.search(raw):
        return "leftover JSON"
    if _SPEAKER_LABEL.match(raw):
        return "copies a transcript line"
    if len(cleaned) < min_chars or len(cleaned.split()) < (2 if language in ("ko", "ja", "zh") else 3):
        return "too short"  # a bare keyword or two ("fruit taken") is no suggestion"
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
