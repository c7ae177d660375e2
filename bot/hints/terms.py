"""Salient terms of recent talk: what the group has been talking about, in a few words.

Used for the fallback suggestions and to judge whether a suggestion is grounded. Plain
frequency with recency weighting over content words: stopwords dropped (English and
Korean), Korean particles stripped from word ends, words said by several people favoured.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)

_EN_STOP = frozenset(
    """
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further get got had hadn't has hasn't have haven't having he he'd he'll he's her here here's
hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just
know let's like me more most mustn't my myself no nor not now of off on once only or other ought our ours
ourselves out over own really right said same say see shan't she she'd she'll she's should shouldn't so some
such than that that's the their theirs them themselves then there there's these they they'd they'll they're
they've thing things think this those through to too under until up upon us very was wasn't we we'd we'll
we're we've well were weren't what what's when when's where where's which while who who's whom why why's
will with won't would wouldn't yeah yes you you'd you'll you're you've your yours yourself yourselves
oh okay ok um uh hmm mean going gonna want wanted one two go went come came make made take took thee thou
thy hath shall upon unto said says tell told lot much many something anything everything nothing kind sort
way time day actually maybe pretty sure still even back good great nice little big new old
""".split()
)

_KO_STOP = frozenset(
    """
그 이 저 것 거 그거 이거 저거 그냥 진짜 정말 너무 아주 좀 조금 많이 그래서 그런데 근데 그리고 하지만 그러면 그럼
네 예 아니 아니요 응 어 음 아 뭐 왜 어떻게 언제 어디 누구 무엇 우리 저희 나 너 제가 내가 저는 나는 당신 그게 이게
있다 없다 하다 되다 있어요 없어요 해요 했어요 합니다 입니다 이에요 예요 같아요 같은 때 수 등 및 또 더 잘 다 안 못
""".split()
)

# Longest first, so that 에서 is stripped before 서 could be.
_KO_PARTICLES = sorted(
    """
은 는 이 가 을 를 에 에서 에게 한테 께 의 도 만 로 으로 과 와 하고 이랑 랑 이나 나 까지 부터 보다 처럼 요 이요
이에요 예요 이었어요 였어요 입니다 이다 인데 이고 에는 에서는 으로는 로는 과는 와는 에도 에서도 까지는 부터는
""".split(),
    key=len,
    reverse=True,
)


def _hangul(word: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in word)


def _normalise(word: str) -> str:
    word = unicodedata.normalize("NFKC", word).strip("'’-")
    if _hangul(word):
        for p in _KO_PARTICLES:
            if word.endswith(p) and len(word) - len(p) >= 2:
                return word[: -len(p)]
        return word
    return word.lower()


def content_words(text: str) -> list[str]:
    out = []
    for raw in _WORD.findall(text):
        w = _normalise(raw)
        if not w or w in _EN_STOP or w in _KO_STOP:
            continue
        if _hangul(w):
            if len(w) < 2:
                continue
        elif len(w) < 4 or w.endswith(("n't", "'s", "'re", "'ll", "'ve", "'d")):
            continue
        out.append(w)
    return out


@dataclass(frozen=True)
class Line:
    """One utterance of the transcript window."""

    speaker: str
    text: str
    end: float  # call time its speech ended
    language: str | None = None


def salient_terms(lines: list[Line], now: float, *, limit: int = 8, half_life: float = 90.0) -> list[str]:
    """Content words of ``lines``, most salient first."""
    score: dict[str, float] = {}
    speakers: dict[str, set[str]] = {}
    first_seen: dict[str, float] = {}
    for line in lines:
        recency = math.pow(0.5, max(now - line.end, 0.0) / half_life)
        for w in content_words(line.text):
            score[w] = score.get(w, 0.0) + recency
            speakers.setdefault(w, set()).add(line.speaker)
            first_seen.setdefault(w, line.end)

    def weight(w: str) -> float:
        value = score[w] * (1.5 if len(speakers[w]) > 1 else 1.0) + 0.02 * min(len(w), 10)
        # Without a tagger, inflected verbs and adverbs ("removed", "spilling", "quickly") make
        # poor topics: keep them, behind the nouns.
        if not _hangul(w) and w.endswith(("ed", "ing", "ly")):
            value *= 0.4
        return value

    ranked = sorted(score, key=lambda w: (-weight(w), -first_seen[w]))
    return ranked[:limit]


def mentions(text: str, term: str) -> bool:
    """Does ``text`` mention ``term`` (case-insensitive, allowing inflections at its end)?"""
    text = unicodedata.normalize("NFKC", text).lower()
    if _hangul(term):
        return term in text
    stem = term[:-1] if len(term) > 5 and term.endswith("s") else term
    return re.search(r"\b" + re.escape(stem), text) is not None


def dominant_language(lines: list[Line], default: str = "en") -> str:
    """The conversation's language: the one most of the recent words were spoken in."""
    weight: Counter[str] = Counter()
    for line in lines:
        if line.language:
            weight[line.language] += max(len(line.text), 1)
    return weight.most_common(1)[0][0] if weight else default


def _related(a: str, b: str) -> bool:
    """Same word up to an inflection ("sail"/"sailed", "harbour"/"harbor", "한라산"/"한라산에")."""
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    shortest = min(len(a), len(b))
    return n >= (2 if _hangul(a) else max(4, shortest - 2)) and n >= shortest - 2


def about(text: str, lines: list[Line]) -> bool:
    """Does ``text`` name something said in ``lines`` (a content word, up to inflection)?"""
    mine = set(content_words(text))
    said = {w for line in lines for w in content_words(line.text)}
    return any(_related(a, b) for a in mine for b in said)
