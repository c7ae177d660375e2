"""Built-in suggestions when no model answers: follow-ups on the recent conversation's salient terms."""

from __future__ import annotations

from collections.abc import Sequence

from bot.hints.sanitize import clean

# Phrased as invitations, not facts: a term is only known to have been said, not what was said about it.
_TEMPLATES = {
    "en": (
        "Ask more about {t}: what stood out?",
        "Go back to {t}: how did that start?",
        "What does everyone else think about {t}?",
        "Any stories about {t}?",
        "What would you do differently with {t}?",
        "Has {t} changed lately?",
    ),
    "ko": (
        "{t} 이야기를 좀 더 해 볼까요? 가장 기억에 남는 건?",
        "{t} 얘기는 어떻게 시작됐는지 물어보세요.",
        "다른 분들은 {t}에 대해 어떻게 생각하세요?",
        "{t}에 얽힌 에피소드가 있나요?",
        "{t}, 다음에는 어떻게 해 보고 싶어요?",
        "요즘 {t}에 달라진 점이 있나요?",
    ),
}
_GENERIC = {
    "en": (
        "What has everyone been up to this week?",
        "Any plans for the weekend?",
        "What's something you're looking forward to?",
        "Seen or read anything good lately?",
    ),
    "ko": (
        "이번 주에 다들 어떻게 지냈어요?",
        "주말 계획 있어요?",
        "요즘 기대하고 있는 일이 있나요?",
        "최근에 재미있게 본 것 있어요?",
    ),
}


def fallback_suggestions(
    terms: list[str], language: str, count: int, *, avoid: Sequence[str] = (), max_chars: int = 120
) -> list[str]:
    """``count`` suggestions built from ``terms`` (most salient first), none in ``avoid``.

    A term already suggested (it appears in ``avoid``) comes after the fresh ones; the phrasing
    rotates so that consecutive hints do not read alike."""
    templates = _TEMPLATES.get(language, _TEMPLATES["en"])
    generic = _GENERIC.get(language, _GENERIC["en"])
    said = " ".join(avoid).lower()
    fresh = [t for t in terms if t.lower() not in said] + [t for t in terms if t.lower() in said]
    out: list[str] = []
    offset = len(avoid)
    for i, term in enumerate(fresh):
        if len(out) >= count:
            break
        for j in range(len(templates)):
            text = clean(templates[(i + offset + j) % len(templates)].format(t=term), max_chars)
            if text not in avoid and text not in out:
                out.append(text)
                break
    for text in generic:
        if len(out) >= count:
            break
        if text not in avoid and text not in out:
            out.append(text)
    return out[:count]
