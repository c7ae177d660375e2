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
그 이 저 것 거 그거 이거 저거 그것 이것 저것 무언가 뭔가 누군가 어딘가 언젠가 여기 거기 저기 이런 그런 저런
무슨 어느 모든 다른 가끔 가끔가끔 한참 조금 매우 어느덧 게다가 아주 새로 서로 아직 오늘 이제 지금 다시 항상 역시 벌써 이렇게 그렇게 저렇게 자기 자기들 그대 그녀 그들 우리들 너희 때문 정도 사람 사람들 하나 모두 다들 그냥 진짜 정말 너무 아주 좀 조금 많이 그래서 그런데 근데 그리고 하지만 그러면 그럼
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


def _strip_particle(word: str) -> tuple[str, str]:
    """(stem, particle) of a Korean word form; the particle is '' when none was found.

    A particle of two syllables or more ("처럼", "에서", "까지") is stripped even when one syllable
    is left: "것처럼" is the bound noun 것 with a particle, never a topic. A one-syllable
    particle needs two syllables left, so that "나이" and "사과" stay whole."""
    for p in _KO_PARTICLES:
        if word.endswith(p) and len(word) > len(p) and (len(word) - len(p) >= 2 or len(p) >= 2):
            return word[: -len(p)], p
    return word, ""


def _normalise(word: str) -> str:
    word = unicodedata.normalize("NFKC", word).strip("'’-")
    if _hangul(word):
        return _strip_particle(word)[0]
    return word.lower()


def content_words(text: str) -> list[str]:
    out = []
    for raw in _WORD.findall(text):
        w = _normalise(raw)
        if not _hangul(w) and w.endswith(("'s", "’s")):
            w = w[:-2]  # a possessive names its word: "Carl's statement" is about "carl"
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
    # Whisper's mean log-probability of the utterance's tokens; None for text known to be
    # right (typed, or a reference transcript).
    confidence: float | None = None
    # Whisper's words as it wrote them, with the probability of each (its least sure token);
    # empty when unknown. A topic is taken from a word only when it was heard for sure.
    words: tuple[tuple[str, float], ...] = ()


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


def related(a: str, b: str) -> bool:
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
    return any(related(a, b) for a in mine for b in said)


# --- topics for the built-in suggestions -------------------------------------------------
#
# A topic the fallback builds a sentence on must be something the group really said and a
# thing one can talk about. Whisper's misrecognitions ("moct" for "more", "친정품") come in
# utterances it was unsure of, and are rarely repeated the same way by other lines; so a
# word counts as heard only when its utterance was confident, or when it was said in two
# lines or by two people. Without a tagger, a Korean stem counts as a noun only when a
# particle that follows nouns was seen on it; English words that are inflected verbs or
# adverbs are left out, and two content words said together ("rigor mortis") make one topic.

# Whisper's avg_logprob at or above which its words are taken as heard: on whisper-base, the
# utterances below it held most of the misrecognised content words (benchmarks/bench_hint_quality.py).
CONFIDENT = -0.35
# A word's probability (its least sure token) at or above which it is taken as heard. On
# whisper-base, of the content words written at 0.9 or more, 1% were not what was said (1 of
# 105 English, 1 of 77 Korean), against 15% and 29% of all of them (benchmarks/bench_hint_quality.py data).
WORD_SURE = 0.9

# Particles that follow only nouns (a verb or adjective form never ends in them).
_NOUN_ONLY = frozenset(
    "를 에서 에게 한테 께 의 와 과 으로 까지 부터 처럼 이랑 에는 에서는 으로는 과는 와는 에도 에서도 까지는 부터는".split()
)
# Particles that also end verb and adjective forms (하는, 좋은, 먹을, 하기가): trusted only on
# a stem whose last syllable is not a usual verb-stem or ending syllable.
_AMBIGUOUS = frozenset("은 는 이 가 을 에 로 도 만".split())
_VERBISH_FINAL = frozenset(
    "야 어 아 여 워 하 되 리 시 치 지 기 히 이 우 주 오 보 나 러 려 며 고 서 게 므 도 던 한 된 운 는 은 인 니 다 라 까".split()
)
_EN_WEAK = frozenset(
    """
mister missus miss madam lady lord replied answered asked cried seemed looked began quite rather
someone somebody anyone everyone people person whom whose thus therefore however perhaps though
although shall might must also another every first last next part place thee thine nigh
without within towards toward upon across along around behind beside beyond downstairs upstairs anon
afraid alone awake asleep able aware full whole sure true ready enough almost always never often
heard thought brought found left felt kept knew took gave stood spoke spake became began sent held
meant lost seen done given taken known shown hold give keep seem tell need needs call feel leave bring
find help show turn start stop live believe happen remember understand speak talk walk read write hear
seek seest obtain paid require recite regarding behold beneath present second
""".split()
)


def _jong(ch: str) -> int:
    code = ord(ch) - 0xAC00
    return code % 28 if 0 <= code < 11172 else 0


def _ko_noun(stem: str, particle: str) -> bool:
    """Is ``stem`` (particle ``particle`` stripped) a noun, as far as its shape tells?"""
    if len(stem) < 2 or stem in _KO_STOP or not all("\uac00" <= ch <= "\ud7a3" for ch in stem):
        return False
    # ㅆ and double final consonants end verb stems (있, 했, 않, 없, 읽), not nouns.
    if _jong(stem[-1]) in (2, 3, 5, 6, 9, 10, 11, 12, 13, 14, 15, 18, 20):
        return False
    if particle in _NOUN_ONLY:
        return True
    return particle in _AMBIGUOUS and stem[-1] not in _VERBISH_FINAL


def _ko_bare_noun(word: str) -> bool:
    """Could ``word``, seen without a particle, be a noun? Not when it ends like a verb form or
    in what would be a particle ("것을"), nor with a ㅆ final anywhere ("있었는데", "했다")."""
    return (
        len(word) >= 2
        and word not in _KO_STOP
        and all("\uac00" <= ch <= "\ud7a3" for ch in word)
        and word[-1] not in _VERBISH_FINAL
        and word[-1] not in "은는이가을를에의도만로와과데요"
        and not any(_jong(ch) == 20 for ch in word)
        # Doubled words are mimetic adverbs ("꼬박꼬박", "흑흑"), not things.
        and not (len(word) % 2 == 0 and word[: len(word) // 2] == word[len(word) // 2 :])
    )


def _en_topic_word(word: str) -> bool:
    return (
        len(word) >= 4
        and word.isalpha()
        and word not in _EN_STOP
        and word not in _EN_WEAK
        and not word.endswith(("ly", "ed"))
    )


_MODIFIER = ("al", "ic", "ous", "ive", "ful", "ary", "ian", "an", "able", "ible", "less", "ern", "ish", "ent", "ant")


@dataclass
class _Seen:
    text: str  # as it will be shown
    score: float = 0.0
    lines: set[int] | None = None
    speakers: set[str] | None = None
    heard: bool = False  # said in a confident utterance
    noun: bool = False  # Korean: seen with a particle that follows nouns
    words: tuple[str, ...] = ()


def _certainty(line: Line) -> dict[str, float]:
    """Whisper's word -> its probability (the lowest, for a word said twice in the line)."""
    out: dict[str, float] = {}
    for word, p in line.words:
        for part in _WORD.findall(unicodedata.normalize("NFKC", word).lower()):
            out[part] = min(p, out.get(part, 1.0))
    return out


def _candidates(text: str) -> list[tuple[str, str, bool, tuple[str, ...], tuple[str, ...]]]:
    """(key, shown form, noun evidence, parts, the words as written) for each topic candidate of one utterance."""
    text = unicodedata.normalize("NFKC", text)
    tokens = list(_WORD.finditer(text))
    out: list[tuple[str, str, bool, tuple[str, ...], tuple[str, ...]]] = []
    previous: tuple[str, str] | None = None  # the token before, if it was a topic word
    for i, m in enumerate(tokens):
        raw = m.group().strip("'’-")
        if _hangul(raw):
            stem, particle = _strip_particle(raw)
            if particle in ("도", "는", "은", "만"):  # "사람들까지도", "집에서는": two particles
                inner, second = _strip_particle(stem)
                if len(second) >= 2:
                    stem, particle = inner, second
            noun = _ko_noun(stem, particle)
            if noun or (not particle and _ko_bare_noun(stem)):
                out.append((stem, stem, noun, (stem,), (raw.lower(),)))
            previous = None
            continue
        word = raw.lower()
        if not _en_topic_word(word):
            previous = None
            continue
        before = text[: m.start()].rstrip()
        shown = raw if raw[:1].isupper() and not raw.isupper() and before and before[-1] not in ".!?" else word
        out.append((word, shown, False, (word,), (word,)))
        adjacent = previous is not None and text[tokens[i - 1].end() : m.start()].strip() == ""
        # Two words make one topic when the first reads as a modifier ("medical practitioner",
        # "human voice") or a name ("King Merneptah"), not a verb and its object ("obtain help").
        if adjacent and previous is not None and (previous[1][:1].isupper() or previous[0].endswith(_MODIFIER)):
            out.append(
                (f"{previous[0]} {word}", f"{previous[1]} {shown}", False, (previous[0], word), (previous[0], word))
            )
        previous = (word, shown)
    return out


def topic_terms(
    lines: list[Line],
    now: float,
    *,
    limit: int = 12,
    half_life: float = 90.0,
    confident: float = CONFIDENT,
    word_sure: float = WORD_SURE,
) -> list[str]:
    """Topics for the built-in suggestions, most salient first: words or two-word phrases that
    were heard for sure (every word of it at least ``word_sure`` probable where Whisper's word
    probabilities are known, else a confident utterance; or said in two lines or by two people)
    and that are things one can talk about (Korean nouns, English words that are not inflected
    verbs or adverbs). A phrase comes before its own words, which are then left out."""
    seen: dict[str, _Seen] = {}
    for n, line in enumerate(lines):
        recency = math.pow(0.5, max(now - line.end, 0.0) / half_life)
        probability = _certainty(line)
        line_sure = line.confidence is None or line.confidence >= confident
        for key, shown, noun, parts, written in _candidates(line.text):
            known = [probability[w] for w in written if w in probability]
            sure = min(known) >= word_sure if probability and len(known) == len(written) else line_sure
            s = seen.setdefault(key, _Seen(shown, lines=set(), speakers=set(), words=parts))
            s.text = shown
            s.score += recency
            assert s.lines is not None and s.speakers is not None
            s.lines.add(n)
            s.speakers.add(line.speaker)
            s.heard = s.heard or sure
            s.noun = s.noun or noun

    def usable(s: _Seen) -> bool:
        assert s.lines is not None and s.speakers is not None
        repeated = len(s.lines) > 1 or len(s.speakers) > 1
        if not (s.heard or repeated):
            return False
        if _hangul(s.text):
            # A bare word (no particle seen) passed the shape checks; heard for sure it is
            # most often a noun whose particle was dropped ("동네", "순간"), rarely an adverb.
            return s.noun or repeated or s.heard
        if s.text.lower().endswith("ing") and len(s.words) == 1:
            return repeated  # "spilling", "walking": verbs more often than topics
        return True

    def weight(s: _Seen) -> float:
        assert s.lines is not None and s.speakers is not None
        return s.score * (1.5 if len(s.speakers) > 1 else 1.0) * (1.4 if len(s.words) > 1 else 1.0) + 0.02 * min(
            len(s.text), 10
        )

    ranked = sorted((s for s in seen.values() if usable(s)), key=lambda s: -weight(s))
    out: list[str] = []
    covered: set[str] = set()
    for s in ranked:
        if len(out) >= limit:
            break
        if len(s.words) == 1 and s.words[0] in covered:
            continue  # "canal" once "alimentary canal" is in
        if len(s.words) > 1 and any(w in covered for w in s.words):
            continue  # "post mortem" and "mortem examination": one is enough
        out.append(s.text)
        covered.update(s.words)
    return out


def unsure_words(lines: list[Line], *, word_sure: float = WORD_SURE) -> set[str]:
    """Content words that Whisper wrote only with doubt: every time below ``word_sure``, in one
    line by one person. A suggestion naming one may be built on a misrecognition."""
    doubtful: dict[str, set[tuple[int, str]]] = {}
    sure: set[str] = set()
    for n, line in enumerate(lines):
        if not line.words:
            sure.update(content_words(line.text))
            continue
        for word, p in line.words:
            for w in content_words(word):
                if p >= word_sure:
                    sure.add(w)
                else:
                    doubtful.setdefault(w, set()).add((n, line.speaker))
    return {
        w
        for w, where in doubtful.items()
        if w not in sure and len({n for n, _ in where}) < 2 and len({s for _, s in where}) < 2
    }
