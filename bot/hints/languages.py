"""Which languages hints are needed in: each participant reads them in the language they speak.

A participant's language is the one most of their own recent words were in; someone who has
not spoken yet gets the conversation's (the dominant language of everyone's recent words).
The languages to prepare suggestions in are the conversation's first, then each speaker's,
at most ``limit``: the model is asked once per language, so work grows with the languages
present, not with the participants.
"""

from __future__ import annotations

from collections import Counter

from bot.hints.terms import Line, dominant_language


def speaker_languages(lines: list[Line]) -> dict[str, str]:
    """Speaker name -> the language most of their words in ``lines`` were in (speakers whose
    lines carry no language are left out)."""
    by: dict[str, list[Line]] = {}
    for line in lines:
        if line.language:
            by.setdefault(line.speaker, []).append(line)
    return {name: dominant_language(own) for name, own in by.items()}


def needed_languages(lines: list[Line], default: str, limit: int = 3) -> list[str]:
    """The conversation's language first, then the other languages speakers speak, by how much
    was said in them; at most ``limit``."""
    dominant = dominant_language(lines, default)
    weight: Counter[str] = Counter()
    per_speaker = speaker_languages(lines)
    for line in lines:
        if line.speaker in per_speaker:
            weight[per_speaker[line.speaker]] += max(len(line.text), 1)
    others = [lang for lang, _ in weight.most_common() if lang != dominant]
    return [dominant, *others][: max(limit, 1)]


def own_language(lines: list[Line], fallback: str) -> str:
    """The language of one participant's own ``lines``; ``fallback`` (the conversation's) when
    they have said nothing in the window."""
    return dominant_language(lines, fallback) if any(line.language for line in lines) else fallback
