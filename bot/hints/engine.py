"""The hints engine: a pipeline listener that watches for lulls and hands out suggestions.

It keeps the conversation state from voice activity, the transcript window from
utterances, a background preparer for model suggestions, and on each lull delivers one
``Hint`` through the owner's ``HintDelivery`` to the recipients the owner's provider names,
then stores every suggestion text (``CallRecorder.add_suggestion``).

Time: with a wall clock a thread of its own checks for lulls ten times a second; with a
virtual clock (``replay --speed 0``) the check runs on the pipeline's ``on_time`` as audio
is fed, and a lull is declared at the call time a live call would have declared it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import CallClock
from bot.config import Config
from bot.hints.awkward import Said, SaidLog, SignalOptions
from bot.hints.fallback import fallback_suggestions
from bot.hints.languages import own_language
from bot.hints.llm import LlmSettings, LlmSuggester
from bot.hints.lull import Lull, LullDetector, LullOptions
from bot.hints.preparer import Preparer
from bot.hints.sanitize import same
from bot.hints.state import ConversationState
from bot.hints.terms import Line, dominant_language, topic_terms
from bot.hints.types import Hint, HintDelivery, Recipient, RecipientProvider, RecipientResult, SuggestionSet
from bot.pipeline import PipelineListener, Speaker, UtteranceEvent
from storage.records import SuggestionRecord

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between lull checks on a wall clock


@dataclass(frozen=True)
class Delivered:
    """What happened at one lull, for the owner's figures and tests."""

    hint: Hint
    results: tuple[RecipientResult, ...]
    suggestion_ids: tuple[int, ...]
    latency: float  # lull declared -> delivered, call seconds


@dataclass
class EngineStats:
    lulls: int = 0
    delivered: list[Delivered] = field(default_factory=list)
    failed_recipients: int = 0


def llm_settings(config: Config) -> LlmSettings:
    c = config.llm
    return LlmSettings(
        base_url=c.base_url,
        model=c.model,
        api_key=c.api_key,
        timeout=c.timeout_seconds,
        connect_timeout=c.connect_timeout_seconds,
        temperature=c.temperature,
        max_tokens=c.max_tokens,
        structured=c.structured,
    )


def signal_options(config: Config) -> SignalOptions:
    h = config.hints
    return SignalOptions(
        monologue=h.monologue,
        monologue_share=h.monologue_share,
        monologue_seconds=h.monologue_seconds,
        short_answers=h.short_answers,
        short_words=h.short_answer_words,
        backchannels=h.backchannels,
        backchannel_seconds=h.backchannel_seconds,
        unanswered=h.unanswered,
    )


def default_language(language: str | None) -> str:
    """The hints' language before any speech has been detected: the configured language, or
    the first of a list ("ko,en"); English when it is left to detection. Live calls and
    replay share it so that a replay shows what the call would have seen."""
    first = (language or "").split(",")[0].strip()
    return first if first and first != "auto" else "en"


class HintEngine(PipelineListener):
    def __init__(
        self,
        config: Config,
        clock: CallClock,
        delivery: HintDelivery,
        *,
        recipients: RecipientProvider | None = None,
        recorder=None,
        session_id: int | None = None,
        suggester: LlmSuggester | None = None,
        default_language: str = "en",
        settle: Callable[[], object] | None = None,
    ) -> None:
        h = config.hints
        self.clock = clock
        self.delivery = delivery
        self.recorder = recorder
        self.session_id = session_id
        self.recipients = recipients or self.present
        self.count = h.suggestions
        self.max_chars = h.max_chars
        self.max_age = h.max_age_seconds
        self.default_language = default_language
        # Virtual time: transcription runs behind the feeding source in wall time; at a lull,
        # wait for the transcripts of speech before it (the owner passes pipeline.drain).
        self.settle = settle
        self.state = ConversationState()
        self.said = SaidLog()
        self.window = h.window_seconds
        self.detector = LullDetector(
            self.state,
            LullOptions(
                threshold=h.lull_seconds,
                min_turns=h.min_turns,
                active_window=h.active_window_seconds,
                cooldown=h.cooldown_seconds,
                max_per_session=h.max_per_session,
                flagging=h.flagging,
                flagging_threshold=min(h.flagging_lull_seconds, h.lull_seconds),
                signals=signal_options(config),
                signal_threshold=min(h.signal_lull_seconds, h.lull_seconds),
            ),
            said=self._said,
        )
        if suggester is None and config.llm.enabled:
            suggester = LlmSuggester(llm_settings(config), count=h.suggestions, max_chars=h.max_chars)
        self.suggester = suggester
        self.preparer = Preparer(
            suggester,
            clock,
            window=h.window_seconds,
            min_interval=h.prepare_interval_seconds,
            retries=config.llm.retries,
            backoff=config.llm.backoff_seconds,
            down_pause=config.llm.down_pause_seconds,
            default_language=default_language,
            wanted=lambda: len(self.state.present()) >= 2,
        )
        self.stats = EngineStats()
        self._speakers: dict[str, Speaker] = {}
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not clock.virtual:
            self._ticker = threading.Thread(target=self._tick_loop, name="hints-lull", daemon=True)
            self._ticker.start()

    # -- pipeline events -------------------------------------------------------------------

    def on_join(self, speaker: Speaker, at: float) -> None:
        with self._lock:
            self._speakers[speaker.key] = speaker
        self.state.joined(speaker.key)

    def on_leave(self, speaker: Speaker, at: float | None) -> None:
        with self._lock:
            self._speakers.pop(speaker.key, None)
        self.state.left(speaker.key, at)

    def on_speech_start(self, speaker: Speaker, at: float) -> None:
        self.state.speech_started(speaker.key, at)

    def on_speech_end(self, speaker: Speaker, at: float) -> None:
        self.state.speech_ended(speaker.key, at)

    def on_utterance(self, event: UtteranceEvent) -> None:
        t = event.transcript
        words = tuple((w.text, w.probability) for w in t.words)
        line = Line(event.speaker.name, event.text, event.end, t.language, t.avg_logprob, words)
        self.said.add(Said(event.speaker.key, event.start, event.end, event.transcribed_at, event.text, line.language))
        self.preparer.add_line(line, event.transcribed_at)

    def _said(self, now: float, since: float) -> list[Said]:
        """The lines known at call time ``now`` (virtual time: once transcription has caught up
        with the audio fed so far, so the check sees what a live call would have had)."""
        if self.clock.virtual and self.settle is not None:
            self.settle()
        return self.said.known(now, since)

    def language_of(self, key: str, at: float, fallback: str) -> str:
        """The language a participant speaks: their own recent lines', else ``fallback``."""
        own = [Line(s.key, s.text, s.end, s.language) for s in self.said.known(at, at - self.window) if s.key == key]
        return own_language(own, fallback)

    def on_time(self, at: float) -> None:
        if self.clock.virtual:
            self.tick(at)

    def present(self) -> list[Recipient]:
        """Everyone in the call now (the owner filters by opt-in)."""
        with self._lock:
            return [Recipient(s.key, s.name, s.user_id) for s in self._speakers.values()]

    # -- lulls -----------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.tick(self.clock.now())
            except Exception:
                log.exception("lull check failed")

    def tick(self, now: float) -> list[Delivered]:
        """Check for a lull due by call time ``now`` and deliver its hints (one per language)."""
        with self._tick_lock:
            lull = self.detector.check(now)
            if lull is None:
                return []
            self.stats.lulls += 1
            return self._deliver(lull)

    def _texts(
        self, ready: SuggestionSet | None, language: str, lines: list[Line], avoid: list[str], t: float
    ) -> tuple[list[str], list[str]]:
        """The suggestions in ``language``: the model's prepared set, the fallback filling in."""
        texts: list[str] = []
        sources: list[str] = []
        if ready is not None and ready.language == language:
            for text in ready.texts:
                if not any(same(text, a) for a in [*avoid, *texts]):
                    texts.append(text)
                    sources.append(ready.source)
        if len(texts) < self.count:
            # Heard for sure and worth talking about; the terms said in the reader's language first.
            terms = topic_terms([x for x in lines if x.language == language], t)
            terms += [w for w in topic_terms(lines, t) if w not in terms]
            extra = fallback_suggestions(
                terms, language, self.count - len(texts), avoid=[*avoid, *texts], max_chars=self.max_chars
            )
            texts += extra
            sources += ["fallback"] * len(extra)
        return texts, sources

    def _deliver(self, lull: Lull) -> list[Delivered]:
        t = lull.detected_at
        if self.clock.virtual and self.settle is not None:
            self.settle()
        lines = self.preparer.lines(t)
        language = dominant_language(lines, self.default_language)
        recipients = tuple(self.recipients())
        groups: dict[str, list[Recipient]] = {language: []}
        for r in recipients:
            groups.setdefault(self.language_of(r.key, t, language), []).append(r)
        readies = {lang: self.preparer.ready_for(t, self.max_age, lang) for lang in groups if groups[lang]}
        # Waiting above for a model that a live call had finished by t costs no call time; what follows does.
        wall1 = time.perf_counter()
        avoid = self.preparer.avoid(t)
        signals = tuple(str(s) for s in lull.signals)
        if not recipients:  # everyone present opted out: nothing sent, nothing stored, nothing used up
            at = t + (time.perf_counter() - wall1) if self.clock.virtual else self.clock.now()
            log.info("lull at %.1f s: nobody to send suggestions to", t)
            empty = Hint(round(at, 3), (), (), language, (), lull.silence_start, t, signals=signals)
            return [Delivered(empty, (), (), at - t)]
        out: list[Delivered] = []
        for lang, group in groups.items():
            if not group:
                continue
            ready = readies[lang]
            texts, sources = self._texts(ready, lang, lines, avoid, t)
            at = t + (time.perf_counter() - wall1) if self.clock.virtual else self.clock.now()
            from_model = ready is not None and any(src != "fallback" for src in sources)
            hint = Hint(
                at=round(at, 3),
                texts=tuple(texts),
                sources=tuple(sources),
                language=lang,
                recipients=tuple(group),
                lull_start=lull.silence_start,
                detected_at=t,
                generated_at=ready.ready_at if ready is not None and from_model else None,
                generation_seconds=ready.seconds if ready is not None and from_model else None,
                signals=signals,
            )
            out.append(self._send(hint))
            avoid = [*avoid, *texts]
        self.preparer.delivered(t, [x for d in out for x in d.hint.texts])
        return out

    def _send(self, hint: Hint) -> Delivered:
        try:
            results = tuple(self.delivery.deliver(hint))
        except Exception as exc:
            log.exception("hint delivery failed")
            results = tuple(RecipientResult(r, False, f"{type(exc).__name__}: {exc}") for r in hint.recipients)
        failed = [r for r in results if not r.ok]
        if failed:
            self.stats.failed_recipients += len(failed)
            log.warning("hint not delivered to %s", ", ".join(f"{r.recipient.name} ({r.error})" for r in failed))
        ids = self._store(hint, [r.recipient.name for r in results if r.ok])
        done = Delivered(hint, results, ids, hint.at - hint.detected_at)
        self.stats.delivered.append(done)
        return done

    def _store(self, hint: Hint, reached: list[str]) -> tuple[int, ...]:
        if self.recorder is None or self.session_id is None:
            return ()
        ids = []
        for text, source in zip(hint.texts, hint.sources):
            try:
                ids.append(
                    self.recorder.add_suggestion(
                        SuggestionRecord(
                            session_id=self.session_id,
                            at=hint.at,
                            text=text,
                            source=source,
                            recipients=reached,
                            language=hint.language,
                        )
                    )
                )
            except Exception as exc:
                log.error("could not store a suggestion: %s", exc)
        return tuple(ids)

    @property
    def running(self) -> bool:
        """Whether a thread of the engine (the wall-clock lull checker, the preparer) still runs."""
        return (self._ticker is not None and self._ticker.is_alive()) or self.preparer.running

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2.0)
        self.preparer.close()
