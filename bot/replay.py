"""Replaying a recorded call, one audio file per participant, through the live pipeline."""

from __future__ import annotations

import heapq
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy.exc import DBAPIError

from bot.asr.backend import load_backend
from bot.asr.scheduler import Backend, TranscriptionScheduler
from bot.audio.files import probe_audio, read_frames
from bot.audio.frames import PcmFrame
from bot.audio.segmenter import Segment
from bot.clock import VirtualClock, WallClock
from bot.config import Config
from bot.errors import AudioInputError, StalkError
from bot.names import check_name
from bot.pipeline import CallPipeline, CallSummary, PipelineListener, Speaker, UtteranceEvent
from bot.shutdown import StopSignals
from storage.db import Database, describe_error, open_database
from storage.export import short_clock
from storage.plaintext import plain
from storage.recorder import CallRecorder
from storage.records import NewSession
from storage.vocab import SessionSource, SessionStatus, Verification, noun, plural

NAME_CHARS = 64


@dataclass(frozen=True)
class Track:
    name: str
    path: str


def parse_track(arg: str) -> Track:
    name, sep, path = arg.partition("=")
    if not sep or not path:
        raise StalkError(f"bad participant argument {arg!r}", "write NAME=FILE, e.g. alice=alice.wav")
    return Track(check_name(name, "participant name", NAME_CHARS), path)


def check_tracks(tracks: list[Track]) -> None:
    if not tracks:
        raise StalkError("no participants given", "add one NAME=FILE per participant")
    seen: set[str] = set()
    for t in tracks:
        if t.name in seen:
            raise StalkError(f"participant name {t.name!r} is given twice", "give each participant a distinct NAME")
        seen.add(t.name)


def verdict_mark(verdict) -> str:
    """How a speaker verdict shows in the printed transcript (empty when not verifying)."""
    if verdict is None:
        return ""
    score = "" if verdict.score is None else f" {verdict.score:.2f}"
    if verdict.verification == Verification.VERIFIED:
        return f"  [voice ok{score}]"
    if verdict.verification == Verification.MISMATCH:
        return f"  [NOT THEIR VOICE{score}: {plain(verdict.label or 'unknown speaker')}]"
    return f"  [sounds like {plain(verdict.label)}]" if verdict.label else ""


class TranscriptPrinter(PipelineListener):
    """Shows the transcript as it forms: speech times, speaker, text, and how late it came."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        # Public: other printers (replay's hints) take it so their lines never interleave.
        self.lock = threading.Lock()

    def on_utterance(self, event: UtteranceEvent) -> None:
        line = (
            f"[{short_clock(event.start)} - {short_clock(event.end)}] {plain(event.speaker.name)}: {plain(event.text)}"
            f"  (+{event.latency:.2f} s){verdict_mark(event.verdict)}"
        )
        self.write(line)

    def write(self, line: str) -> None:
        """One whole line (text and newline in one write, so a log line on the same terminal
        cannot land between them), under the lock."""
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def on_verdict(self, speaker: Speaker, utterance_id: int | None, start: float, end: float, verdict) -> None:
        self.write(
            f"[{short_clock(start)} - {short_clock(end)}] {plain(speaker.name)}: verdict revised:{verdict_mark(verdict)}"
        )

    def on_rejected(self, speaker: Speaker, segment: Segment, reason: str) -> None:
        if reason.startswith("transcription failed"):
            self.write(
                f"[{short_clock(segment.start)} - {short_clock(segment.end)}] {plain(speaker.name)}: <{plain(reason)}>"
            )


def _merged(tracks: list[Track], block: float) -> Iterator[tuple[str, PcmFrame]]:
    """Every track's frames in call-time order, as a live call would deliver them."""
    iters = {t.name: read_frames(t.path, block) for t in tracks}
    heap: list[tuple[float, int, str, PcmFrame]] = []
    for order, (name, it) in enumerate(iters.items()):
        frame = next(it, None)
        if frame is not None:
            heap.append((frame.start + frame.duration, order, name, frame))
    heapq.heapify(heap)
    while heap:
        _, order, name, frame = heapq.heappop(heap)
        yield name, frame
        nxt = next(iters[name], None)
        if nxt is not None:
            heapq.heappush(heap, (nxt.start + nxt.duration, order, name, nxt))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def print_summary(summary: CallSummary, out: TextIO) -> None:
    kept = sum(s.utterances for s in summary.speakers.values())
    dropped = sum(s.rejected for s in summary.speakers.values())
    print(
        f"--- {summary.status}: call length {short_clock(summary.duration)}, {plural(kept, 'utterance')}"
        f" ({dropped} dropped as non-speech or Whisper inventions)",
        file=out,
    )
    width = max((len(n) for n in summary.speakers), default=4)
    for name, stats in summary.speakers.items():
        print(
            f"  {name:<{width}}  {stats.utterances:3d} {noun(stats.utterances, 'utterance')}, talk time {short_clock(stats.talk_time)}",
            file=out,
        )
    for name, counts in summary.verdicts.items():
        labels = ", ".join(f"{n} {k}" for k, n in counts.items() if k not in set(Verification))
        print(
            f"  voice check {name}: {counts.get(Verification.VERIFIED, 0)} verified, {counts.get(Verification.MISMATCH, 0)} not their "
            f"voice{f' ({labels})' if labels else ''}, {counts.get(Verification.UNKNOWN, 0)} not judged",
            file=out,
        )
    if summary.latencies:
        print(
            f"latency to stored: after the end of utterance p50 {percentile(summary.processing_latencies, 50):.2f} s, "
            f"p95 {percentile(summary.processing_latencies, 95):.2f} s; after the last word "
            f"p50 {percentile(summary.latencies, 50):.2f} s, p95 {percentile(summary.latencies, 95):.2f} s",
            file=out,
        )
    if summary.queue_delays:
        waits = f"; the audio waited for a full queue {summary.source_waits} times" if summary.source_waits else ""
        print(
            f"waiting for a transcription worker: p50 {percentile(summary.queue_delays, 50):.2f} s, "
            f"p95 {percentile(summary.queue_delays, 95):.2f} s{waits}",
            file=out,
        )
    early = summary.early
    if early.kept or early.discarded:
        print(
            f"early transcription: {early.kept} kept, {early.discarded} discarded as speech went on "
            f"({early.discarded_seconds:.1f} s of model time repeated)"
            + (f", {early.skipped} skipped (queue full)" if early.skipped else ""),
            file=out,
        )
    speed = summary.duration / summary.wall_seconds if summary.wall_seconds > 0 else float("inf")
    print(
        f"processed {short_clock(summary.duration)} of audio in {summary.wall_seconds:.1f} s "
        f"({speed:.1f}x real time), transcription {summary.compute_seconds:.1f} s",
        file=out,
    )
    if summary.unsaved_file:
        print(f"warning: the database was unavailable; unsaved utterances are in {summary.unsaved_file}", file=out)


def check_writable(db: Database) -> None:
    """Take the write lock once and let it go.

    Another program writing to the database (a second S-Talk, a DB browser) then fails the
    replay here, in one line after SQLite's busy timeout, instead of after the model has
    loaded and the recorder has retried its first write for half a minute.
    """
    try:
        with db.write_session() as s:
            s.connection()  # BEGIN IMMEDIATE on SQLite
            s.rollback()
    except DBAPIError as exc:
        raise describe_error(exc, db.label) from None


def replay(
    config: Config,
    tracks: list[Track],
    *,
    db_url: str,
    speed: float,
    language: str | None = None,
    out: TextIO | None = None,
    listeners: list[PipelineListener] | tuple = (),
    transcriber: Backend | None = None,
    scheduler: TranscriptionScheduler | None = None,
    speaker_model=None,
    hints: bool = True,
    stop: StopSignals | None = None,
) -> CallSummary:
    """Stream the tracks through the pipeline; returns the summary of the stored call.

    Everything that can be checked before the call starts is (files, database, model), so
    a bad input stores nothing; a failure during the call marks the session 'failed'; with
    ``stop`` (the command's ``StopSignals``) a signal ends the call 'interrupted' with every
    utterance heard so far stored, then raises ``bot.shutdown.Interrupted``.
    """
    out = out or sys.stdout
    check_tracks(tracks)
    for track in tracks:
        probe_audio(track.path)
    db = open_database(db_url)
    try:
        check_writable(db)
        # Before the model loads and anything is stored: a voiceprint from another model fails here.
        verifier = make_verifier(config, db, [t.name for t in tracks], speaker_model)
        if transcriber is None:
            transcriber = load_backend(config)
        clock = VirtualClock() if speed == 0 else WallClock(speed)
        recorder = CallRecorder(db)
        printer = TranscriptPrinter(out)
        with stop.call() if stop is not None else nullcontext():
            return _run_call(
                config,
                tracks,
                clock,
                recorder,
                printer,
                transcriber,
                verifier,
                speed,
                language,
                listeners,
                hints,
                stop,
                scheduler,
            )
    finally:
        db.close()


def _run_call(
    config: Config,
    tracks: list[Track],
    clock: VirtualClock | WallClock,
    recorder: CallRecorder,
    printer: TranscriptPrinter,
    transcriber: Backend,
    verifier,
    speed: float,
    language: str | None,
    listeners: list[PipelineListener] | tuple,
    hints: bool,
    stop: StopSignals | None,
    scheduler: TranscriptionScheduler | None = None,
) -> CallSummary:
    """The call itself, from the session's creation to its close; a stop signal is honoured
    between frames, so the close that follows loses nothing."""
    out = printer.out
    engine = None
    if hints and config.hints.enabled:
        from bot.hints.replay import replay_engine

        engine = replay_engine(
            config, clock, out, recorder=recorder, lock=printer.lock, language=language or config.asr.language
        )
    pipeline = CallPipeline(
        config,
        transcriber,
        scheduler=scheduler,
        name=", ".join(t.name for t in tracks),
        recorder=recorder,
        clock=clock,
        listeners=[printer, *([engine] if engine else []), *listeners],
        language=language,
        verifier=verifier,
    )
    ends: dict[str, float] = {}
    status, error = SessionStatus.COMPLETED, None
    try:
        title = ", ".join(t.name for t in tracks)
        pipeline.open(
            NewSession(
                source=SessionSource.REPLAY,
                title=title,
                language=language or config.asr.language,
                asr_model=transcriber.name,
            )
        )
        if engine is not None:
            engine.session_id = pipeline.session_id
            engine.settle = lambda: pipeline.drain(30.0)
        for t in tracks:
            pipeline.add_speaker(t.name, t.name)
        # Discord delivers 20 ms frames; as fast as possible, bigger blocks save overhead
        # without changing what the pipeline computes.
        for name, frame in _merged(tracks, 0.02 if speed else 0.5):
            if stop is not None:
                stop.check()
            end = frame.start + frame.duration
            if isinstance(clock, WallClock):
                delay = clock.wall_for(end - clock.now())
                if delay > 0 and stop is not None:
                    if stop.wait(delay):
                        stop.check()
                elif delay > 0:
                    time.sleep(delay)
            pipeline.feed(name, frame)
            ends[name] = end
        for t in tracks:
            pipeline.end_speaker(t.name, ends.get(t.name))
    except AudioInputError as exc:
        status, error = SessionStatus.FAILED, str(exc)
        raise
    except KeyboardInterrupt as exc:
        status, error = SessionStatus.INTERRUPTED, f"replay interrupted ({getattr(exc, 'name', 'SIGINT')})"
        raise
    except BaseException as exc:
        # Anything else that stops the call (a StorageError, a bug) must not leave it
        # recorded as 'completed'.
        status, error = (
            SessionStatus.FAILED,
            str(exc) if isinstance(exc, StalkError) else f"{type(exc).__name__}: {exc}",
        )
        raise
    finally:
        if stop is not None:
            stop.closing()
        try:
            summary = pipeline.close(status, error)
        finally:
            if engine is not None:
                engine.close()
        if summary.session_id is not None:  # else the session was never created: nothing to report
            print_summary(summary, out)
            if engine is not None:
                from bot.hints.replay import print_hints_summary

                print_hints_summary(engine, out)
            print(f"session: {summary.session_id}", file=out, flush=True)
    return summary


def make_verifier(config: Config, db: Database, names: list[str], speaker_model=None):
    """A CallVerifier when any participant has a voiceprint (the speaker model loads only then)."""
    from bot.speaker.verifier import CallVerifier, check_model
    from storage.voiceprints import get_voiceprint, list_voiceprints

    if not config.speaker.verify:
        return None
    prints = {n: vp for n in names if (vp := get_voiceprint(db, n)) is not None}
    if not prints:
        return None
    if speaker_model is None:
        from bot.speaker.model import load_speaker_model

        speaker_model = load_speaker_model(config)
    for vp in prints.values():
        check_model(vp, speaker_model)
    s = config.speaker
    return CallVerifier(
        speaker_model,
        list_voiceprints(db, speaker_model.model_id),
        threshold=s.threshold,
        min_seconds=s.min_utterance_s,
        context=s.context,
    )
