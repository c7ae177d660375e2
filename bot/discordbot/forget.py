"""What ``/forget`` deletes: the registered deleters, each saying what it deletes.

``SessionManager.forget`` runs the whole sequence (stop listening in every session, drop the
voiceprint from running verifiers, then each ``Forgetter`` in a worker thread); ``/forget`` and
``/privacy`` name exactly what ``StalkBot.forgetters`` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.summary.make import make_summary
from storage.db import Database
from storage.deletion import forget_user
from storage.settings import forget_user_settings


@dataclass(frozen=True)
class Forgetter:
    what: str  # said to the user: "This deletes <what>, ..."
    delete: Callable[[Database, int], int]


def forget_transcripts(db: Database, user_id: int) -> int:
    """``storage.deletion.forget_user`` as a Forgetter: the rows that were about the user."""
    done = forget_user(db, user_id)
    # Their calls' summaries went with their words; the others still get one, made from what
    # the others said (the extractive one: quick, and no model sees the call again).
    for session_id in done.summaries_dropped:
        make_summary(db, session_id, None)
    return done.utterances + done.participants + done.voiceprints + done.suggestions_deleted


def default_forgetters() -> list[Forgetter]:
    return [
        Forgetter("your settings and /optin choices", forget_user_settings),
        Forgetter(
            "what you said in every stored call (and calls nobody else was in), your name on hints "
            "and voice labels, your voiceprints, and your words in call summaries",
            forget_transcripts,
        ),
    ]
