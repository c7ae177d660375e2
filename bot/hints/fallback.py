"""Built-in suggestions when no model answers: follow-ups on the recent conversation's salient terms."""

from __future__ import annotations

from collections.abc import Sequence

from bot.hints.sanitize import clean

# Phrased as invitations, not facts: a topic is only known to have been said, not what was
# said about it. The topic is quoted, as what someone said, so that any noun or phrase reads
# right in the sentence ("Has gallage changed lately?" read as a claim about a thing); Korean
# frames take no particle whose form would depend on the topic's last syllable.
_TEMPLATES = {
    "en": (
        "Someone brought up “{t}”: what do the rest of you think?",
        "Could you say more about “{t}”? What's the story there?",
        "What got you talking about “{t}”?",
        "Has anyone else had their own experience with “{t}”?",
        "Going back to “{t}”: what stuck with you most?",
        "Is there more to tell about “{t}”?",
    ),
    "ko": (
        "아까 ‘{t}’ 얘기가 나왔는데, 다른 분들은 어떻게 생각하세요?",
        "혹시 ‘{t}’ 얘기를 좀 더 들려주실 수 있어요?",
        "다들 ‘{t}’ 하면 떠오르는 이야기가 있나요?",
        "그런데 ‘{t}’ 얘기는 어쩌다 나온 거예요?",
        "혹시 ‘{t}’ 관련해서 직접 겪어 본 일 있으세요?",
        "아까 나온 ‘{t}’ 얘기 중에 제일 기억에 남는 게 뭐예요?",
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
