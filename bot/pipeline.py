"""The speech pipeline: per-participant PCM in, timed, attributed, stored utterances out.

Sources (the Discord receiver, ``replay``, tests) call ``feed`` with each participant's
``PcmFrame``s. Resampling, voice activity detection and segmentation run in the caller's
thread (cheap, a few percent of a core per speaker); finished utterances go to the shared
transcription pool, and each transcript is stored the moment it is ready. Nothing here
knows about Discord.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bot.asr.context import CallContext, ContextOptions, Line
from bot.asr.hallucination import FilterOptions
from bot.asr.scheduler import Backend, Job, JobClass, JobResult, TranscriptionScheduler
from bot.asr.transcriber import DecodeOptions, Request, Transcript
from bot.audio.frames import PcmFrame
from bot.audio.level import LevelGate, LevelOptions
from bot.audio.resample import StreamResampler
from bot.audio.segmenter import Segment, Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted, Tentative
from bot.audio.vad import SAMPLE_RATE, SileroModel
from bot.clock import CallClock, WallClock
from bot.config import Config
from bot.errors import StorageError
from bot.speaker.tracker import Verdict
from storage.recorder import CallRecorder
from storage.records import NewSession, UtteranceRecord
from storage.script import ChineseScript
from storage.vocab import SessionStatus, plural

if TYPE_CHECKING:
    from bot.speaker.verifier import CallVerifier

log = logging.getLogger(__name__)

# A source is late or early by up to a frame without that being a gap in the audio.
GAP_TOLERANCE = 0.03


@dataclass(frozen=True)
class Speaker:
    key: str  # stable within the call: replay NAME, Discord user id
    name: str
    user_id: str | None = None
    participant_id: int | None = None  # row in the database


@dataclass(frozen=True)
class UtteranceEvent:
    speaker: Speaker
    start: float
    end: float
    ready_at: float  # call time the end of speech was detected
    transcribed_at: float  # call time the transcript was ready (and stored)
    transcript: Transcript
    utterance_id: int | None
    compute_seconds: float = 0.0  # wall time of the transcription batch it was in
    batch: int = 1
    verdict: Verdict | None = None  # speaker verification, when the call verifies speakers
    queue_delay: float = 0.0  # call time it waited for a transcription worker

    @property
    def text(self) -> str:
        return self.transcript.text

    @property
    def latency(self) -> float:
        """From the last word to the stored transcript (includes the silence that ends an utterance)."""
        return self.transcribed_at - self.end

    @property
    def processing_latency(self) -> float:
        """From the end of the utterance (detected after ``vad.min_silence_ms``) to the stored transcript."""
        return self.transcribed_at - self.ready_at


class PipelineListener:
    """Receives what the pipeline notices; override what you need. Called from pipeline threads."""

    def on_speech_start(self, speaker: Speaker, at: float) -> None: ...

    def on_speech_end(self, speaker: Speaker, at: float) -> None: ...

    def on_utterance(self, event: UtteranceEvent) -> None: ...

    def on_rejected(self, speaker: Speaker, segment: Segment, reason: str) -> None: ...

    def on_audio_segment(self, speaker: Speaker, start: float, end: float, audio: np.ndarray) -> None:
        """Every accepted speech segment, before transcription: ``audio`` is 16 kHz mono float32
        from ``start`` to ``end`` (call time). For enrolment from live speech."""

    def on_verdict(
        self, speaker: Speaker, utterance_id: int | None, start: float, end: float, verdict: Verdict
    ) -> None:
        """A stored utterance's speaker verdict changed, on the evidence of later utterances."""

    def on_join(self, speaker: Speaker, at: float) -> None: ...

    def on_leave(self, speaker: Speaker, at: float | None) -> None:
        """The participant left or their source ended (``at`` None: the call is closing)."""

    def on_time(self, at: float) -> None:
        """Audio up to call time ``at`` has been fed (also in silence: time passes for lull checks)."""


@dataclass
class SpeakerStats:
    utterances: int = 0
    rejected: int = 0
    talk_time: float = 0.0  # seconds of detected speech


@dataclass(frozen=True)
class CallSummary:
    session_id: int | None
    status: SessionStatus
    duration: float  # seconds of call time
    wall_seconds: float  # real time the pipeline ran
    speakers: dict[str, SpeakerStats]
    latencies: list[float]  # last word -> stored, per utterance
    processing_latencies: list[float]  # end of utterance detected -> stored
    compute_seconds: float  # model time
    unsaved_file: str | None = None
    # speaker name -> verdict counts (each Verification, and each mismatch label)
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None  # why the call failed or was interrupted, as stored with the session
    early: EarlyStats = field(default_factory=lambda: EarlyStats())
    queue_delays: list[float] = field(default_factory=list)  # per stored utterance, call time waited for a worker
    source_waits: int = 0  # times the transcription queue was full and the audio source waited


@dataclass
class EarlyStats:
    """Early transcriptions (``[vad] early_ms``): kept when the utterance did end there,
    discarded when speech went on (their model time repeated work)."""

    kept: int = 0
    discarded: int = 0
    discarded_seconds: float = 0.0  # model time of the discarded ones (their share of a batch)
    skipped: int = 0  # not attempted: the transcription queue was full (the final utterance is transcribed)


@dataclass
class _Early:
    """An early transcription in flight, and what became of the utterance it guessed."""

    segment: Segment
    job: Job
    result: JobResult | None = None
    final: Segment | None = None  # the utterance did end as guessed (waiting for the result)
    discarded: bool = False


class _Stream:
    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self.lock = threading.Lock()
        self.resampler: StreamResampler | None = None
        self.segmenter: Segmenter | None = None
        self.next_in: float | None = None  # call time the next frame should start at
        self.language_hint: str | None = None
        self.stats = SpeakerStats()
        self.closed = False
        # Verdicts of one participant are decided and stored in order, one at a time.
        self.verify_lock = threading.Lock()
        self.discarded = False  # forgotten mid-call (/forget): nothing more of theirs is stored
        self.early: _Early | None = None  # the current silence's early transcription
        self.level: LevelGate | None = None  # background speech under this participant's voice


class CallPipeline:
    def __init__(
        self,
        config: Config,
        transcriber: Backend,
        *,
        scheduler: TranscriptionScheduler | None = None,
        name: str = "call",
        recorder: CallRecorder | None = None,
        clock: CallClock | None = None,
        listeners: list[PipelineListener] | tuple = (),
        vad: SileroModel | None = None,
        language: str | None = None,
        verifier: CallVerifier | None = None,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.clock = clock or WallClock()
        # Read by every pipeline thread at each event, changed by the event loop (a listener for
        # one /enroll): a tuple swapped whole under a lock, so a reader never sees it half-changed.
        self._listeners: tuple[PipelineListener, ...] = tuple(listeners)
        self._listeners_lock = threading.Lock()
        self.vad = vad or SileroModel()
        self.segmenter_options = SegmenterOptions.from_config(config.vad)
        self.level_options = LevelOptions(below_db=config.vad.background_db)
        lang = language if language is not None else config.asr.language
        codes = tuple(c.strip() for c in lang.split(",") if c.strip() and c.strip() != "auto")
        self.language = codes[0] if len(codes) == 1 else None
        asr = config.asr
        self.decode = DecodeOptions(
            language=self.language,
            candidates=codes if len(codes) > 1 else (),
            beam_size=asr.beam_size,
            filter=FilterOptions(
                no_speech_threshold=asr.no_speech_threshold,
                log_prob_threshold=asr.log_prob_threshold,
                compression_ratio_threshold=asr.compression_ratio_threshold,
                known_phrases=asr.hallucination_filter,
            ),
            chinese_script=ChineseScript(asr.chinese_script),
        )
        self.context = CallContext(
            ContextOptions(enabled=asr.context, lines=asr.context_lines, others=asr.context_others)
        )
        # The process's shared scheduler (every guild's call), or one of this call's own.
        own = scheduler is None
        if scheduler is None:
            scheduler = TranscriptionScheduler.private(
                transcriber, workers=asr.workers, batch_size=asr.batch_size, queue_size=asr.queue_size
            )
        self.pool = scheduler.open_session(
            name,
            self.decode,
            clock=self.clock,
            on_result=self._on_result,
            prepare=self._prepare,
            # At full speed a replay is background work; live calls and paced replays come first.
            kind=JobClass.BACKGROUND if self.clock.virtual else JobClass.LIVE,
            own=own,
        )
        self._queue_delays: list[float] = []
        self.verifier = verifier
        self._embeddings: dict[int, np.ndarray | None] = {}  # id(job) -> speaker embedding
        self.session_id: int | None = None
        self._streams: dict[str, _Stream] = {}
        self._languages: Counter[str] = Counter()  # confidently detected, over the whole call
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._processing_latencies: list[float] = []
        self._unsaved: list[UtteranceRecord] = []
        # Every record stored: if the database file disappears during the call (SQLite goes
        # on writing to a deleted file), they all go to the recovery file at the close.
        self._stored: list[UtteranceRecord] = []
        self._store_error: str | None = None  # the last storage failure, for the session's error
        # Held from the "forgotten?" check to the commit, so forget_speaker returns only once
        # no utterance of that participant can still be written.
        self._store_lock = threading.Lock()
        # Early transcriptions by id(job). Order: a stream's lock -> _early_lock -> _lock.
        self._early: dict[int, _Early] = {}
        self._early_lock = threading.Lock()
        self.early = EarlyStats()
        self._started = time.perf_counter()

    # -- session and participants -------------------------------------------------------

    def open(self, new: NewSession) -> int | None:
        """Start the session row. If that fails, the transcription threads are stopped before
        the error goes on: a pipeline that never opened holds nothing."""
        if self.recorder is not None:
            try:
                self.session_id = self.recorder.start_session(new)
            except BaseException:
                self.pool.close()
                raise
        return self.session_id

    # -- listeners -----------------------------------------------------------------------

    @property
    def listeners(self) -> tuple[PipelineListener, ...]:
        return self._listeners

    def add_listener(self, listener: PipelineListener) -> None:
        """Attach a listener to the running call (thread-safe; events already being delivered
        go to the listeners as they were)."""
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: PipelineListener) -> None:
        with self._listeners_lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def add_speaker(self, key: str, name: str, user_id: str | None = None, joined_at: float = 0.0) -> Speaker:
        with self._lock:
            if key in self._streams and (not self._streams[key].closed or self._streams[key].discarded):
                return self._streams[key].speaker
            participant_id = None
            if self.recorder is not None and self.session_id is not None:
                participant_id = self.recorder.add_participant(self.session_id, name, user_id, joined_at)
            speaker = Speaker(key, name, user_id, participant_id)
            self._streams[key] = _Stream(speaker)
            if self.verifier is not None:
                self.verifier.bind(key, name, user_id)
        self._notify("on_join", speaker, joined_at)
        return speaker

    def attach_verifier(self, verifier: CallVerifier) -> None:
        """Start verifying speakers in a running call (a first voiceprint enrolled during it);
        utterances already heard keep no verdict."""
        with self._lock:
            for key, stream in self._streams.items():
                verifier.bind(key, stream.speaker.name, stream.speaker.user_id)
            self.verifier = verifier

    @property
    def speakers(self) -> list[Speaker]:
        with self._lock:
            return [s.speaker for s in self._streams.values()]

    def _hotwords(self) -> str | None:
        if not self.config.asr.hotwords:
            return None
        with self._lock:  # worker threads ask while participants may be joining
            names = sorted({s.speaker.name for s in self._streams.values()})
        words = list(dict.fromkeys([*names, *self.config.asr.vocabulary]))
        return ", ".join(words) or None

    # -- audio ---------------------------------------------------------------------------

    def feed(self, key: str, frame: PcmFrame) -> None:
        """Add a participant's audio. Frames of one participant must come from one thread, in order;
        with a virtual clock, all participants' frames in call-time order."""
        stream = self._streams[key]
        with stream.lock:
            if stream.closed:
                return
            if stream.segmenter is None:
                stream.segmenter = Segmenter(
                    self.vad.new_stream(), self.segmenter_options, start_index=round(frame.start * SAMPLE_RATE)
                )
                stream.level = LevelGate(self.level_options)
            if stream.resampler is None or stream.resampler.in_rate != frame.sample_rate:
                self._flush_resampler(stream)
                stream.resampler = StreamResampler(frame.sample_rate)
            if stream.next_in is not None and frame.start > stream.next_in + GAP_TOLERANCE:
                # The source sent nothing for a while (Discord stops sending in silence).
                self._flush_resampler(stream)
                self._handle(stream, stream.segmenter.skip_to(round(frame.start * SAMPLE_RATE)))
                stream.next_in = frame.start
            elif stream.next_in is None:
                stream.next_in = frame.start
            self._handle(stream, stream.segmenter.push(stream.resampler.process(frame.pcm)))
            stream.next_in += frame.duration
        if self.clock.virtual:
            # As fast as possible, the source's position is the call's present.
            self.clock.advance(frame.start + frame.duration)
        self._notify("on_time", frame.start + frame.duration)

    def silent_until(self, key: str, at: float) -> None:
        """The participant's source sent nothing, and will send nothing, before call time ``at``
        (live: Discord stops sending in silence, and the receiver has played out everything up
        to ``at``). Their open utterance ends as soon as the end-of-utterance silence has
        passed in call time: no silence is fed or scored, no wall-clock wait. If they speak
        again sooner, their next frame continues the same utterance, as it would have without
        this call. Called from the thread that feeds this participant, in order with frames."""
        stream = self._streams.get(key)
        if stream is None:
            return
        with stream.lock:
            if stream.closed or stream.segmenter is None or stream.next_in is None:
                return
            if at <= stream.next_in + GAP_TOLERANCE:
                return  # within a frame of what was fed: not a gap
            # A gap is certain, so the next frame would flush the resampler anyway: its tail
            # is the last of the real audio.
            self._flush_resampler(stream)
            self._handle(stream, stream.segmenter.silent_until(round(at * SAMPLE_RATE)))
        self._notify("on_time", at)

    def end_speaker(self, key: str, at: float | None = None) -> None:
        """The participant left or their source ended: close their open utterance."""
        stream = self._streams.get(key)
        if stream is None:
            return
        with stream.lock:
            if stream.closed:
                return
            self._flush_resampler(stream)
            if stream.segmenter is not None:
                end_index = None if at is None else round(at * SAMPLE_RATE)
                self._handle(stream, stream.segmenter.finish(end_index))
            stream.closed = True
        self._notify("on_leave", stream.speaker, at)
        if self.recorder is not None and stream.speaker.participant_id is not None and at is not None:
            try:
                self.recorder.participant_left(stream.speaker.participant_id, at)
            except Exception as exc:  # when they left is a detail; the call goes on being stored
                log.warning("could not record that %s left: %s", stream.speaker.name, exc)

    def forget_speaker(self, key: str) -> None:
        """Drop a participant for the rest of the call (``/forget`` mid-call): their audio is
        ignored, utterances still being transcribed are discarded and any kept for a retry are
        dropped. Once this returns nothing more of theirs reaches storage, so their stored rows
        can be deleted without a late utterance pointing at a deleted participant."""
        stream = self._streams.get(key)
        if stream is None:
            return
        with stream.lock:
            stream.closed = True
            stream.discarded = True
        self.context.forget(key)
        with self._store_lock:  # a store already past its check finishes first
            pid = stream.speaker.participant_id
            with self._lock:
                self._unsaved = [r for r in self._unsaved if r.participant_id != pid]

    def _flush_resampler(self, stream: _Stream) -> None:
        if stream.resampler is not None and stream.segmenter is not None:
            tail = stream.resampler.flush()
            if len(tail):
                self._handle(stream, stream.segmenter.push(tail))

    def _handle(self, stream: _Stream, events) -> None:
        for event in events:
            if isinstance(event, Tentative):
                self._settle_early(stream, None)  # speech went on after an earlier guess
                job = Job(
                    Request(audio=event.segment.audio),
                    ready_at=event.segment.ready_at,
                    context=(stream, event.segment),
                    speaker=stream.speaker.key,
                    kind=JobClass.SPECULATIVE,
                )
                early = _Early(event.segment, job)
                with self._early_lock:
                    stream.early = early
                    self._early[id(job)] = early
                if not self.pool.try_submit(job):
                    # A full queue: the guess is not worth a wait; the utterance is transcribed when it ends.
                    with self._early_lock:
                        stream.early = None
                        self._early.pop(id(job), None)
                        self.early.skipped += 1
            elif isinstance(event, Segment):
                lo = round((event.start - event.audio_start) * SAMPLE_RATE)
                hi = round((event.end - event.audio_start) * SAMPLE_RATE)
                speech = event.audio[max(lo, 0) : max(hi, 0)]  # a view, not a copy
                background = stream.level.judge(speech, event.duration) if stream.level is not None else None
                if background is not None:
                    self._settle_early(stream, None)  # an early transcription of it is not kept either
                    with self._lock:
                        stream.stats.rejected += 1
                    log.info("dropped %.2f-%.2f of %s: %s", event.start, event.end, stream.speaker.name, background)
                    self._notify("on_rejected", stream.speaker, event, background)
                    continue
                stream.stats.talk_time += event.duration
                self._notify("on_audio_segment", stream.speaker, event.start, event.end, speech)
                if not self._settle_early(stream, event):
                    request = Request(audio=event.audio)
                    self.pool.submit(
                        Job(request, ready_at=event.ready_at, context=(stream, event), speaker=stream.speaker.key)
                    )
            elif isinstance(event, SpeechStarted):
                self._notify("on_speech_start", stream.speaker, event.at)
            elif isinstance(event, SpeechEnded):
                self._notify("on_speech_end", stream.speaker, event.at)

    def _settle_early(self, stream: _Stream, segment: Segment | None) -> bool:
        """The utterance ended as ``segment`` (None: speech went on). True if the early
        transcription was of exactly this utterance: it becomes its transcript, now or when it
        is done, and the utterance is not transcribed again."""
        with self._early_lock:
            early, stream.early = stream.early, None
            if early is None:
                return False
            same = (
                segment is not None
                and not segment.split
                and (segment.start, segment.end, segment.audio_start)
                == (early.segment.start, early.segment.end, early.segment.audio_start)
                and np.array_equal(segment.audio, early.segment.audio)
            )
            if not same:
                early.discarded = True
                self.early.discarded += 1
                if early.result is not None:
                    self._early.pop(id(early.job), None)
                    self._count_discarded(early.result)
                return False
            self.early.kept += 1
            if early.result is None:
                early.final = segment  # adopted when its result comes
                return True
            self._early.pop(id(early.job), None)
            result = early.result
        assert segment is not None
        self._adopt(early, result, segment)
        return True

    def _count_discarded(self, result: JobResult) -> None:
        self.early.discarded_seconds += result.compute_seconds / max(result.batch, 1)
        with self._lock:
            self._embeddings.pop(id(result.job), None)

    def _adopt(self, early: _Early, result: JobResult, segment: Segment) -> None:
        """The early transcript is the utterance's: stored once the utterance is known to have
        ended (its end of silence in call time), or when it is done, if later."""
        done_at = max(result.done_at, segment.ready_at)
        if not self.clock.virtual:
            done_at = max(done_at, self.clock.now())
        job = Job(result.job.request, ready_at=segment.ready_at, context=(early.job.context[0], segment))
        with self._lock:
            if id(early.job) in self._embeddings:
                self._embeddings[id(job)] = self._embeddings.pop(id(early.job))
        self._on_result(replace(result, job=job, done_at=done_at))

    def _prepare(self, job: Job) -> Request:
        stream, segment = job.context
        if self.verifier is not None:
            # Here, in the worker's timed work, so that the speaker model's compute counts in
            # call time (virtual clock) like transcription, off the thread feeding audio.
            embedding = None
            if segment.duration >= self.verifier.min_seconds:
                try:
                    embedding = self.verifier.embed(segment.audio)
                except Exception:
                    log.exception("speaker embedding failed for %s", stream.speaker.name)
            with self._lock:
                self._embeddings[id(job)] = embedding
        return replace(
            job.request,
            hotwords=self._hotwords(),
            language_hints=self._language_hints(stream),
            previous=self.context.before(stream.speaker.key, segment.start),
        )

    def _language_hints(self, stream: _Stream) -> tuple[str, ...]:
        with self._lock:
            call = [lang for lang, _ in self._languages.most_common(2)]
        return tuple(dict.fromkeys(([stream.language_hint] if stream.language_hint else []) + call))

    def _notify(self, method: str, *args) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:
                log.exception("listener %s.%s failed", type(listener).__name__, method)

    # -- transcripts ---------------------------------------------------------------------

    def _on_early_result(self, result: JobResult) -> bool:
        """An early transcription's result: held until the utterance ends, adopted if it already
        ended as guessed, dropped if speech went on. True if ``result`` was one."""
        with self._early_lock:
            early = self._early.get(id(result.job))
            if early is None:
                return False
            if early.final is None and not early.discarded:
                early.result = result  # the utterance has not ended yet
                return True
            del self._early[id(result.job)]
            if early.discarded:
                self._count_discarded(result)
                return True
            final = early.final
        assert final is not None
        self._adopt(early, result, final)
        return True

    def _on_result(self, result: JobResult) -> None:
        if self._on_early_result(result):
            return
        stream, segment = result.job.context
        transcript = result.transcript
        with self._lock:
            embedding = self._embeddings.pop(id(result.job), None)
        if transcript is None or not transcript.kept:
            reason = transcript.rejected if transcript is not None else f"transcription failed: {result.error}"
            with self._lock:
                stream.stats.rejected += 1
            log.info("dropped %.2f-%.2f of %s: %s", segment.start, segment.end, stream.speaker.name, reason)
            self._notify("on_rejected", stream.speaker, segment, reason)
            return
        if transcript.language_probability >= 0.5:
            stream.language_hint = transcript.language
            with self._lock:
                self._languages[transcript.language] += 1
        if stream.discarded:
            return
        self.context.add(
            Line(stream.speaker.key, segment.start, segment.end, transcript.language, transcript.text),
            transcript.compression_ratio,
        )
        with stream.verify_lock:
            judgement = None
            if self.verifier is not None:
                judgement = self.verifier.judge(stream.speaker.key, segment.start, segment.end, embedding)
            verdict = judgement.item.verdict if judgement is not None else None
            utterance_id = None
            if self.recorder is not None and self.session_id is not None:
                record = UtteranceRecord(
                    session_id=self.session_id,
                    participant_id=stream.speaker.participant_id,
                    start=round(segment.start, 3),
                    end=round(segment.end, 3),
                    transcribed_at=round(result.done_at, 3),
                    text=transcript.text,
                    language=transcript.language,
                    language_probability=transcript.language_probability,
                    avg_logprob=transcript.avg_logprob,
                    no_speech_prob=transcript.no_speech_prob,
                    compression_ratio=transcript.compression_ratio,
                    speaker_score=None if verdict is None or verdict.score is None else round(verdict.score, 4),
                    verification=None if verdict is None else verdict.verification,
                    speaker_label=None if verdict is None else verdict.label,
                )
                utterance_id = self._store(record, stream)
            if judgement is not None:
                judgement.item.utterance_id = utterance_id
                self._revise(stream, judgement.revised)
        event = UtteranceEvent(
            stream.speaker,
            segment.start,
            segment.end,
            segment.ready_at,
            result.done_at,
            transcript,
            utterance_id,
            result.compute_seconds,
            result.batch,
            verdict,
            result.queue_delay,
        )
        with self._lock:
            stream.stats.utterances += 1
            self._queue_delays.append(event.queue_delay)
            self._latencies.append(event.latency)
            self._processing_latencies.append(event.processing_latency)
        self._notify("on_utterance", event)

    def _revise(self, stream: _Stream, revised) -> None:
        """Earlier verdicts that later evidence changed: update the stored rows, tell listeners."""
        for item in revised:
            v = item.verdict
            if self.recorder is not None and item.utterance_id is not None:
                try:
                    self.recorder.update_verification(
                        item.utterance_id, None if v.score is None else round(v.score, 4), v.verification, v.label
                    )
                except StorageError as exc:
                    log.error("could not revise the verdict of utterance %s: %s", item.utterance_id, exc)
            self._notify("on_verdict", stream.speaker, item.utterance_id, item.start, item.end, v)

    def _store(self, record: UtteranceRecord, stream: _Stream | None = None) -> int | None:
        """Commit now; if the database stays locked, keep the record and try again later."""
        with self._store_lock:
            # By stream, not participant id: SQLite may give a deleted participant's id to the next.
            if stream is not None and stream.discarded:
                return None
            return self._store_locked(record)

    def _store_locked(self, record: UtteranceRecord) -> int | None:
        assert self.recorder is not None  # only called for a call that records
        with self._lock:
            backlog, self._unsaved = self._unsaved, []
        try:
            for old in backlog:
                self.recorder.add_utterance(old)
                self._stored.append(old)
                backlog = backlog[1:]
            utterance_id = self.recorder.add_utterance(record)
            self._stored.append(record)
            return utterance_id
        except Exception as exc:  # a StorageError, or anything else: the record is kept either way
            log.error("%s; keeping %d utterance(s) in memory", exc, len(backlog) + 1)
            with self._lock:
                self._unsaved = backlog + [record] + self._unsaved
                self._store_error = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
            return None

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every utterance ended so far is transcribed (virtual time: lets a listener
        see, at a moment of call time, the transcripts a live call would have had by then)."""
        return self.pool.drain(timeout)

    # -- end -----------------------------------------------------------------------------

    def close(self, status: SessionStatus = SessionStatus.COMPLETED, error: str | None = None) -> CallSummary:
        """End every stream, wait for their transcripts, and close the session.

        Never raises: whatever happens here, every transcript is stored or in the recovery
        file (``summary.unsaved_file``), and the session is closed with a status that says
        whether the call was stored completely."""
        for key in list(self._streams):
            # Speech already heard is real even when the call failed or was interrupted.
            try:
                self.end_speaker(key)
            except Exception:
                log.exception("closing the stream of %s failed", key)
        self.pool.close()
        duration = max((s.next_in or 0.0 for s in self._streams.values()), default=0.0)
        unsaved_file = None
        if self.pool.stats.errors and status == SessionStatus.COMPLETED:
            status, error = (
                SessionStatus.FAILED,
                f"{plural(self.pool.stats.errors, 'utterance')} could not be transcribed ({self.pool.stats.first_error})",
            )
        if self.recorder is not None and self.session_id is not None:
            with self._lock:
                backlog, self._unsaved = self._unsaved, []
            saved = 0
            missing = self.recorder.db.missing()
            if missing is None:
                try:
                    for record in backlog:
                        self.recorder.add_utterance(record)
                        self._stored.append(record)
                        saved += 1
                except Exception as exc:
                    self._store_error = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
            # A file deleted meanwhile took everything stored with it: all of it is saved.
            left = [*self._stored, *backlog] if missing else backlog[saved:]
            if left:
                unsaved_file = self._write_unsaved(left)
                where = f"saved to {unsaved_file}" if unsaved_file else "printed to standard error"
                cause = f"the database file {missing}" if missing else f"database unavailable ({self._store_error})"
                reason = f"{cause}: {plural(len(left), 'utterance')} {where} instead"
                status, error = SessionStatus.FAILED, f"{error}; {reason}" if error else reason
            try:
                self.recorder.finish_session(self.session_id, status, error=error, duration=round(duration, 3))
            except Exception as exc:
                log.error("could not close session %s: %s", self.session_id, exc)
                if status == SessionStatus.COMPLETED:  # the call is not stored completely: say so
                    status, error = SessionStatus.FAILED, f"could not close the session ({exc})"
        return CallSummary(
            session_id=self.session_id,
            status=status,
            duration=duration,
            wall_seconds=time.perf_counter() - self._started,
            speakers={s.speaker.name: s.stats for s in self._streams.values()},
            latencies=list(self._latencies),
            processing_latencies=list(self._processing_latencies),
            compute_seconds=self.pool.stats.compute_seconds,
            unsaved_file=unsaved_file,
            verdicts={}
            if self.verifier is None
            else {s.speaker.name: self.verifier.counts(k) for k, s in self._streams.items()},
            error=error,
            early=replace(self.early),
            queue_delays=list(self._queue_delays),
            source_waits=self.pool.stats.source_waits,
        )

    def _write_unsaved(self, records: list[UtteranceRecord]) -> str | None:
        """The recovery file: in the working directory, else the home directory, else the
        temporary one (the disk that filled up may hold the first); as a last resort the
        records go to standard error. Written whole or not at all (temporary file, rename)."""
        import sys
        import tempfile

        from storage.files import write_atomic

        name = f"s-talk-unsaved-session-{self.session_id}-{int(time.time())}.json"
        text = json.dumps([asdict(r) for r in records], ensure_ascii=False, indent=1)
        for folder in (Path.cwd(), Path.home(), Path(tempfile.gettempdir())):
            path = (folder / name).resolve()
            try:
                write_atomic(path, text)
                return str(path)
            except OSError as exc:
                log.error("could not write the recovery file %s: %s", path, exc)
        print(f"S-Talk could not write a recovery file; the unsaved utterances:\n{text}", file=sys.stderr, flush=True)
        return None
