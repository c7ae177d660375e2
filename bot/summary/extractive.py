"""The summary when no model answers: what was said, picked rather than written.

* **Topics**: the call's salient terms (``bot.hints.terms.salient_terms`` over the whole call,
  no recency), each with the sentence that says most about the call's topics among those
  naming it; a term already covered by an earlier pick gives no second point.
* **Decisions** and **to-dos**: sentences with a cue phrase ("we decided", "let's", "I'll";
  "하기로", "합시다", "할게요"), with who said them.
* **Open questions**: the last few questions asked (a question mark, or an English question
  word first). Whether one was answered is more than the text can tell; the model does better.

Every point is an utterance's own text (plain, shortened), so it is in the call's language
and grounded by construction.
"""

from __future__ import annotations

import re

from bot.hints.sanitize import clean
from bot.hints.terms import mentions, salient_terms
from bot.summary.grounding import MAX_CHARS
from bot.summary.lines import Said
from storage.summaries import SummaryPoint
from storage.vocab import PointKind

TOPICS = 5
DECISIONS = 5
TODOS = 5
QUESTIONS = 3

_DECISION = {
    "en": re.compile(
        r"\b(?:we\s+(?:decided|agreed|chose|settled)|decided|agreed|let'?s(?!\s+(?:talk|discuss|see|think|start|chat))|we\s+(?:will|'ll|are going to)|we'll)\b",
        re.I,
    ),
    "ko": re.compile(r"기로\s*(?:했|하|해|정)|합시다|하자|정했|결정"),
}
_TODO = {
    "en": re.compile(
        r"\b(?:i\s+(?:will|can|shall|am going to)|i'll|i'm going to|you\s+(?:will|should)|"
        r"(?:need|needs|have|has)\s+to|must|to-?do)\b",
        re.I,
    ),
    "ko": re.compile(r"겠습니다|해야|야겠|할\s*게|맡을게"),
}
_QUESTION_WORD = re.compile(
    r"^(?:who|what|when|where|why|how|which|should|shall|can|could|would|do|does|did|is|are)\b", re.I
)


def _text(s: Said) -> str:
    return clean(s.text, MAX_CHARS)


def is_question(text: str, language: str) -> bool:
    t = text.strip()
    if t.endswith(("?", "？")):
        return True
    return language == "en" and _QUESTION_WORD.match(t) is not None


def _cue(table: dict[str, re.Pattern[str]], language: str) -> re.Pattern[str]:
    return table.get(language, table["en"])


def _promise_ko(text: str) -> bool:
    """A Korean first-person promise: "-ㄹ게요" (올게요, 준비할게요), the syllable before 게
    ending in ㄹ."""
    for i in range(1, len(text)):
        if text[i] == "게" and "\uac00" <= text[i - 1] <= "\ud7a3" and (ord(text[i - 1]) - 0xAC00) % 28 == 8:
            return True
    return False


def _is_todo(text: str, language: str) -> bool:
    return _cue(_TODO, language).search(text) is not None or (language == "ko" and _promise_ko(text))


def extractive_points(said: list[Said], language: str) -> list[SummaryPoint]:
    if not said:
        return []
    lines = [s.line for s in said]
    terms = salient_terms(lines, said[-1].end, limit=4 * TOPICS, half_life=1e12)
    weight = {t: len(terms) - i for i, t in enumerate(terms)}

    def score(s: Said) -> float:
        return sum(w for t, w in weight.items() if mentions(s.text, t))

    decided = _cue(_DECISION, language)
    decisions = [s for s in said if decided.search(s.text) and not is_question(s.text, language)][:DECISIONS]
    todos = [
        s for s in said if s not in decisions and _is_todo(s.text, language) and not is_question(s.text, language)
    ][:TODOS]
    questions = [s for s in said if is_question(s.text, language)][-QUESTIONS:]
    # Topics from the other sentences where there are any: the rest are listed below anyway.
    elsewhere = {s.id for s in [*decisions, *todos, *questions]}

    topics: list[Said] = []
    covered: set[str] = set()
    for term in terms:
        if len(topics) >= TOPICS:
            break
        if term in covered:
            continue
        naming = [s for s in said if s not in topics and mentions(s.text, term) and not is_question(s.text, language)]
        if not naming:
            continue
        best = max(naming, key=lambda s: (s.id not in elsewhere, score(s), -s.start))
        topics.append(best)
        covered.update(t for t in terms if mentions(best.text, t))
    topics.sort(key=lambda s: (s.start, s.id))

    points = [SummaryPoint(PointKind.TOPIC, _text(s), [s.id], [s.speaker]) for s in topics]
    points += [SummaryPoint(PointKind.DECISION, _text(s), [s.id], [s.speaker]) for s in decisions]
    points += [SummaryPoint(PointKind.TODO, _text(s), [s.id], [s.speaker]) for s in todos]
    points += [SummaryPoint(PointKind.QUESTION, _text(s), [s.id], [s.speaker]) for s in questions]
    return points
