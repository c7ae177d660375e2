"""Whether a summary point may stay: plain, safe, in the call's language, and grounded.

Grounded means the point's key words are in the lines it names: every point must have at
least one referenced line that shares a content word with it (``bot.hints.terms``: stopwords
and Korean particles removed, inflections allowed), and the lines that share none are taken
off its references. A model's point with no such line is dropped: that is how an invented
fact is kept out.
"""

from __future__ import annotations

from bot.hints.sanitize import clean
from bot.hints.terms import about, content_words
from bot.summary.lines import Said
from storage.plaintext import has_link, has_mention

MAX_CHARS = 200  # one point, in characters


def _hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def in_language(text: str, language: str) -> bool:
    if language == "ko":
        return _hangul(text)
    if language == "en":
        return not _hangul(text)
    return True


def grounded_refs(text: str, refs: list[Said]) -> list[Said]:
    """The referenced lines that hold a key word of ``text``."""
    return [s for s in refs if about(text, [s.line])]


def rejection(raw: str, language: str) -> str | None:
    """Why a point's text must not be shown (None: it may, once cleaned)."""
    if has_link(raw) or has_mention(raw):
        return "contained a link or a mention"
    text = clean(raw, MAX_CHARS)
    if len(text) < 4 or not content_words(text):
        return "too short"
    if not in_language(text, language):
        return f"not in the call's language ({language})"
    return None
