"""One call's summary, made and stored: the model first, the extractive fallback when none
answers (or it gives nothing usable), in the call's language."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from bot.config import Config
from bot.hints.engine import llm_settings
from bot.hints.llm import LlmError, LlmSettings
from bot.summary.extractive import extractive_points
from bot.summary.lines import call_language, transcript
from bot.summary.llm import LlmSummarizer
from storage.access import Viewer
from storage.db import Database
from storage.models import utcnow
from storage.queries import SessionDetail, get_session
from storage.summaries import SummaryInfo, SummaryRecord, get_summary, save_summary, without_model_summary

log = logging.getLogger(__name__)

EXTRACTIVE = "extractive"
# A summary is no lull: the model may take its time, and says more than three hints.
SUMMARY_TIMEOUT = 180.0
SUMMARY_TOKENS = 800


def summary_settings(config: Config) -> LlmSettings | None:
    """The model to summarise with ([llm], with a longer wait and answer), or None for the
    extractive summary alone ([llm] enabled = false or [summary] use_model = false)."""
    if not config.llm.enabled or not config.summary.use_model:
        return None
    s = llm_settings(config)
    return dataclasses.replace(
        s, timeout=max(s.timeout, SUMMARY_TIMEOUT), max_tokens=max(s.max_tokens, SUMMARY_TOKENS), temperature=0.2
    )


@dataclass(frozen=True)
class Made:
    summary: SummaryInfo
    model_note: str | None = None  # why the model's summary was not used (None: it was, or none asked)
    pieces: int = 0  # transcript pieces sent to the model
    answers: int = 0  # pieces it answered


def summarize(
    detail: SessionDetail, settings: LlmSettings | None, *, chunk_chars: int | None = None, retries: int = 1
) -> tuple[SummaryRecord, str | None, int, int]:
    """(the summary, why the model's was not used, pieces, answers) for ``detail``; nothing stored."""
    started = time.perf_counter()
    said = transcript(detail)
    language = call_language(detail, said)
    note: str | None = None
    pieces = answers = 0
    prompt_chars: int | None = None
    if settings is not None and said:
        summarizer = LlmSummarizer(settings, chunk_chars=chunk_chars, retries=retries)
        try:
            got = summarizer.summarize(said, language)
        except LlmError as exc:
            note = f"the model did not answer ({exc})"
        else:
            pieces, answers, prompt_chars = got.pieces, got.answers, got.prompt_chars
            if got.points:
                record = SummaryRecord(
                    detail.id,
                    summarizer.name,
                    language,
                    got.points,
                    prompt_chars=got.prompt_chars,
                    seconds=round(time.perf_counter() - started, 3),
                )
                return record, None, pieces, answers
            reasons = sorted(set(got.dropped + got.errors))
            note = "the model's answer held no usable point" + (f" ({'; '.join(reasons)})" if reasons else "")
    if note:
        log.info("summary of session %s: %s; the extractive summary is used", detail.id, note)
    points = extractive_points(said, language)
    seconds = round(time.perf_counter() - started, 3)
    record = SummaryRecord(detail.id, EXTRACTIVE, language, points, prompt_chars=prompt_chars, seconds=seconds)
    return record, note, pieces, answers


def make_summary(
    db: Database,
    session_id: int,
    settings: LlmSettings | None,
    *,
    viewer: Viewer | None = None,
    chunk_chars: int | None = None,
    retries: int = 1,
) -> Made | None:
    """Make and store the call's summary (replacing any); None when there is no such call or
    ``viewer`` may not see it. ``settings`` None: the extractive summary alone."""
    detail = get_session(db, session_id, viewer)
    if detail is None:
        return None
    record, note, pieces, answers = summarize(detail, settings, chunk_chars=chunk_chars, retries=retries)
    return Made(save_summary(db, record), note, pieces, answers)


def summary_for(
    db: Database, session_id: int, settings: LlmSettings | None, *, viewer: Viewer | None = None
) -> Made | None:
    """The stored summary, or a new one when the call has none yet (a call from before
    summaries, or one whose summary ``/forget`` dropped)."""
    stored = get_summary(db, session_id, viewer)
    if stored is not None:
        return Made(stored)
    return make_summary(db, session_id, settings, viewer=viewer)


def summarize_at_end(db: Database, session_id: int, settings: LlmSettings | None) -> threading.Thread | None:
    """At a call's end (called from a worker thread, never the event loop): the extractive
    summary at once, so there is one whatever the model does; then, with a model, a daemon
    thread that asks it and replaces the summary if it answers with usable points. The
    thread (returned, None without a model) never raises: a call that is deleted, or a
    database closed meanwhile, only costs the model's summary (made on demand later)."""
    try:
        make_summary(db, session_id, None)
    except Exception:
        log.exception("the summary of session %s could not be made", session_id)
        return None
    if settings is None:
        return None

    def ask() -> None:
        try:
            detail = get_session(db, session_id)
            if detail is None:
                return
            record, note, _, _ = summarize(detail, settings)
            if note is None:
                save_summary(db, record)
        except Exception:
            log.warning("the model's summary of session %s was not stored", session_id, exc_info=True)

    thread = threading.Thread(target=ask, name=f"summary-{session_id}", daemon=True)
    thread.start()
    return thread


class CatchUp:
    """At the bot's start: the model's summary of recent calls that have none (the process
    stopped while the model was writing it, or before the call's end, or the model was down),
    one call after another on a daemon thread of its own; each call keeps its extractive
    summary until the model's replaces it. ``stop()`` ends it between calls."""

    def __init__(
        self, db: Database, settings: LlmSettings, *, hours: float = 24.0, limit: int = 20, delay: float = 60.0
    ) -> None:
        self.db = db
        # After the start, not during it: the bot first comes online and takes calls.
        self.delay = delay
        self.settings = settings
        self.hours = hours
        self.limit = limit
        self.done: list[int] = []  # sessions whose model summary was stored
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Look for such calls (in the caller's thread) and start the thread if there are any."""
        pending = without_model_summary(self.db, utcnow() - timedelta(hours=self.hours), EXTRACTIVE, limit=self.limit)
        if not pending:
            return False
        log.info("asking the model for the summaries of %d recent call(s) that have none", len(pending))
        self._thread = threading.Thread(target=self._run, args=(pending,), name="summary-catch-up", daemon=True)
        self._thread.start()
        return True

    def _run(self, pending: list[int]) -> None:
        if self._stop.wait(self.delay):
            return
        for session_id in pending:
            if self._stop.is_set():
                return
            try:
                detail = get_session(self.db, session_id)
                if detail is None:  # deleted meanwhile
                    continue
                if get_summary(self.db, session_id) is None:  # one to read while the model writes
                    make_summary(self.db, session_id, None)
                record, note, _, _ = summarize(detail, self.settings)
                if note is None and not self._stop.is_set():
                    save_summary(self.db, record)
                    self.done.append(session_id)
                elif note is not None and "did not answer" in note:
                    return  # the model is down: the next start tries again
            except Exception:
                log.warning("the model's summary of session %s was not stored", session_id, exc_info=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every call to be asked about; whether it finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
