"""The transcript as the summariser reads it: utterances with their ids, in call order."""

from __future__ import annotations

from dataclasses import dataclass

from bot.hints.terms import Line, dominant_language
from storage.queries import SessionDetail


@dataclass(frozen=True)
class Said:
    id: int  # the utterance's id: what a summary point refers to
    speaker: str
    text: str
    start: float
    end: float
    language: str | None = None

    @property
    def line(self) -> Line:
        return Line(self.speaker, self.text, self.end, self.language)


def transcript(detail: SessionDetail) -> list[Said]:
    return [
        Said(u.id, u.speaker, u.text, u.start, u.end, u.language)
        for u in sorted(detail.utterances, key=lambda u: (u.start, u.id))
        if u.text.strip()
    ]


def call_language(detail: SessionDetail, said: list[Said]) -> str:
    """The language to summarise in: what most of the words were said in; the configured one
    (not 'auto', the first of a list) when nothing says; English otherwise."""
    configured = (detail.language or "").split(",")[0].strip()
    default = configured if configured and configured != "auto" else "en"
    return dominant_language([s.line for s in said], default)
