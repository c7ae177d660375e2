"""Live sessions: one per guild, each owning a voice connection, a speech pipeline and its listeners.

A session moves through ``SessionState``: STARTING (registered at once, so a second /join is
refused; settings, models and the voice connection are gathered), RUNNING (audio flows),
STOPPING (being taken apart: still reachable for /forget, consent and voiceprint changes, so
nothing of a user who asked to be forgotten is stored late), CLOSED (unregistered). Each
transition is logged. A start that fails releases what it took (the voice connection, the
transcription threads, the session row) and ends CLOSED.

``SessionManager.start`` joins a voice channel and wires receiver -> SilenceWatch -> LiveFeeder
-> CallPipeline -> storage (and the live transcript); ``stop`` takes it apart in the order that
loses nothing: stop receiving (buffered audio goes to the feeder), stop the quiet ticks, close
the attached listeners (no hint goes out once the call ends), leave voice, feed what is queued,
let the pipeline finish the utterances in flight and close the session row, post the last
transcript lines, restore the nickname.

Threads. Everything here runs on the event loop except what the pipeline calls (listeners on
its feeder and ASR threads) and the hint engine's threads. Those read only
``LiveSession.presence``: a frozen ``Presence`` the loop rebuilds from discord.py's member cache
at every voice-state, consent or settings change and publishes by one assignment. They reach the
loop only through ``run_coroutine_threadsafe`` / ``call_soon_threadsafe`` (DMs, /enroll's progress).

Cross-session operations are the manager's: ``forget`` (the whole /forget sequence),
``voiceprint_added`` / ``delete_voiceprints``, ``channel_moved``, ``consent_changed``,
``settings_changed``. Phase-2 features attach through ``SessionManager.listener_factories``:
each factory is called with the new ``LiveSession`` before audio flows and may return a
PipelineListener (hint DMs, speaker verification) or None; a listener with a ``close()`` is
closed when the session ends (leave, auto-leave, kick, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import discord

from bot.asr.backend import load_backend
from bot.asr.scheduler import Backend, TranscriptionScheduler
from bot.audio.frames import PcmFrame
from bot.clock import WallClock
from bot.config import Config
from bot.discordbot import consent
from bot.discordbot.forget import Forgetter
from bot.discordbot.quiet import SilenceWatch
from bot.discordbot.transcript import TranscriptPoster
from bot.discordbot.voices import SpeakerModelSlot, start_verifying, verifier_for_session
from bot.errors import StalkError
from bot.live import LiveFeeder
from bot.pipeline import CallPipeline, CallSummary, PipelineListener
from bot.speaker.model import SpeakerModel
from bot.summary.make import summarize_at_end, summary_settings
from bot.voice.client import ReceivingVoiceClient
from storage.db import Database
from storage.plaintext import for_discord_plain, plain
from storage.recorder import CallRecorder
from storage.records import NewSession
from storage.settings import Consents, GuildSettingsInfo, guild_settings
from storage.settings import consents as load_consents
from storage.vocab import ConsentMode, SessionSource, SessionStatus
from storage.voiceprints import VoiceprintData, delete_user_voiceprints

log = logging.getLogger(__name__)

# How long a shutdown waits for the model's summaries of calls that just ended.
SUMMARY_GRACE = 5.0

ListenerFactory = Callable[["LiveSession"], "PipelineListener | None"]
Channel = discord.VoiceChannel | discord.StageChannel


def member_name(member: discord.abc.User) -> str:
    """A participant's name as stored and shown: their display name made plain (no control or
    invisible characters, one line, at most 64 characters); their id if nothing is left."""
    return plain(member.display_name, 64) or str(member.id)


class SessionError(StalkError):
    """A session cannot start or stop; ``str()`` is said to the user."""


class SessionState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


NO_CONSENTS = Consents(opted_in=frozenset(), opted_out=frozenset())


@dataclass(frozen=True)
class Presence:
    """Who is in the call and who of them is processed, as the event loop last saw it.

    Built on the loop from discord.py's member cache and the session's consent state, then
    published whole (``LiveSession.presence = ...``): worker threads (hints, the feeder) read
    this, never the member cache, which the loop changes under them."""

    humans: frozenset[int] = frozenset()  # in the voice channel, not bots
    bots: frozenset[int] = frozenset()  # other bots (music, soundboards) are never transcribed
    forgotten: frozenset[int] = frozenset()  # used /forget: ignored for the rest of the session
    mode: ConsentMode = ConsentMode.NOTICE
    consents: Consents = NO_CONSENTS
    names: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))  # everyone seen so far

    def is_processed(self, user_id: int) -> bool:
        """The one rule for whether a user's speech is processed in this call."""
        return (
            user_id not in self.bots
            and user_id not in self.forgotten
            and consent.is_processed(user_id, self.mode, self.consents)
        )

    def excluded(self) -> set[int]:
        """The receiver's deny list: whose packets are dropped before decoding."""
        return consent.excluded(self.humans, self.mode, self.consents) | self.bots | self.forgotten

    def name_of(self, user_id: int) -> str:
        return self.names.get(user_id, str(user_id))


@dataclass(frozen=True)
class CallParts:
    """What carries the call's audio, set once when the start has them all."""

    vc: ReceivingVoiceClient
    pipeline: CallPipeline
    feeder: LiveFeeder
    epoch: float  # time.monotonic() at call time 0


@dataclass
class Attachments:
    """What is attached to a running call and taken off when it stops (all loop-owned)."""

    listeners: list[PipelineListener] = field(default_factory=list)  # from listener_factories; closed at stop
    poster: TranscriptPoster | None = None
    poster_task: asyncio.Task[None] | None = None
    quiet: SilenceWatch | None = None
    quiet_task: asyncio.Task[None] | None = None
    empty_timer: asyncio.Task[None] | None = None
    previous_nick: str | None = None
    nick_changed: bool = False


@dataclass
class LiveSession:
    """One guild's call: its core (guild, channel, consent state, state, the audio parts) and
    its ``attachments``. Every field is the event loop's; threads read ``presence`` only."""

    guild: discord.Guild
    channel: Channel
    started_by: int
    settings: GuildSettingsInfo
    consents: Consents = NO_CONSENTS
    state: SessionState = SessionState.STARTING
    presence: Presence = field(default_factory=Presence)
    forgotten: set[int] = field(default_factory=set)
    attachments: Attachments = field(default_factory=Attachments)
    summary: CallSummary | None = None
    parts: CallParts | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def _parts(self) -> CallParts:
        if self.parts is None:
            raise RuntimeError(f"the session in guild {self.guild.id} is still starting")
        return self.parts

    @property
    def vc(self) -> ReceivingVoiceClient:
        return self._parts().vc

    @property
    def pipeline(self) -> CallPipeline:
        return self._parts().pipeline

    @property
    def feeder(self) -> LiveFeeder:
        return self._parts().feeder

    @property
    def epoch(self) -> float:
        return self._parts().epoch

    @property
    def session_id(self) -> int | None:
        return None if self.parts is None else self.parts.pipeline.session_id

    def move_to(self, state: SessionState) -> None:
        log.info("session %s in guild %s: %s -> %s", self.session_id, self.guild.id, self.state, state)
        self.state = state
        if state is SessionState.CLOSED:
            self.closed.set()

    # -- who is processed ----------------------------------------------------------------

    def present(self) -> frozenset[int]:
        """Users (not bots) in the voice channel, as last published."""
        return self.presence.humans

    def is_processed(self, user_id: int) -> bool:
        return self.presence.is_processed(user_id)

    def excluded(self) -> set[int]:
        return self.presence.excluded()

    def publish(self) -> None:
        """Rebuild the presence snapshot from the member cache and this session's consent state,
        swap it in, and give the receiver the new deny list. Event loop only."""
        members = list(self.channel.members)
        names = {**self.presence.names, **{m.id: member_name(m) for m in members}}
        self.presence = Presence(
            humans=frozenset(m.id for m in members if not m.bot),
            bots=frozenset(m.id for m in members if m.bot),
            forgotten=frozenset(self.forgotten),
            mode=self.settings.consent_mode,
            consents=self.consents,
            names=MappingProxyType(names),
        )
        if self.parts is not None:
            self.parts.vc.set_opted_out(self.presence.excluded())

    def sink(self, user_id: int, frame: PcmFrame) -> None:
        # The receiver already drops excluded users before decoding; this catches anyone whose
        # consent state changed between two updates of its list, so nothing unconsented is stored.
        if not self.presence.is_processed(user_id):
            return
        (self.attachments.quiet or self.feeder)(user_id, frame)


@dataclass(frozen=True)
class Forgotten:
    sessions: list[LiveSession]  # the sessions they were heard in (stopped listening to them there)
    deleted: int  # stored items deleted


class SessionManager:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        transcriber: Backend | None = None,
        speaker_model: SpeakerModel | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self._transcriber = transcriber
        # One for the process: every guild's utterances share the model's workers fairly
        # (bot/asr/scheduler.py). Made with the model, stopped by close_transcription.
        self._scheduler: TranscriptionScheduler | None = None
        self.speaker_model = SpeakerModelSlot(config, speaker_model)  # shared by every guild's session
        self._model_lock = asyncio.Lock()
        # Every session not yet CLOSED, whatever its state: one per guild.
        self._sessions: dict[int, LiveSession] = {}
        self.listener_factories: list[ListenerFactory] = []
        # Awaited on the loop once a session has closed (the summary DMs); each one's failure is logged.
        self.ended_hooks: list[Callable[[LiveSession], Awaitable[None]]] = []
        # The model's summaries being written for calls that ended (daemon threads).
        self._summaries: list[threading.Thread] = []

    # -- model ---------------------------------------------------------------------------

    async def transcriber(self) -> Backend:
        """Whisper (local, or the remote server), loaded once on first use and shared by every guild's session."""
        async with self._model_lock:
            if self._transcriber is None:
                self._transcriber = await asyncio.to_thread(load_backend, self.config)
            return self._transcriber

    async def scheduler(self) -> TranscriptionScheduler:
        """The process's transcription scheduler, started with the model on first use."""
        transcriber = await self.transcriber()
        if self._scheduler is None:
            asr = self.config.asr
            self._scheduler = TranscriptionScheduler(
                transcriber, workers=asr.workers, batch_size=asr.batch_size, queue_size=asr.queue_size
            )
        return self._scheduler

    def close_transcription(self, timeout: float | None = None) -> None:
        """At shutdown, after close_all: stop the scheduler's workers (blocking; call off the loop)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.close(timeout)

    # -- settings ------------------------------------------------------------------------

    async def settings_for(self, guild_id: int) -> GuildSettingsInfo:
        d = self.config.discord
        return await asyncio.to_thread(
            guild_settings, self.db, guild_id, default_mode=d.consent_mode, default_live=d.live_transcript
        )

    # -- start / stop --------------------------------------------------------------------

    def get(self, guild_id: int) -> LiveSession | None:
        """The guild's running session (the one commands act on); None while none runs."""
        session = self._sessions.get(guild_id)
        return session if session is not None and session.state is SessionState.RUNNING else None

    def reachable(self) -> list[LiveSession]:
        """Every session whose audio parts exist and that is not closed: running or stopping
        ones (what /forget, consent and voiceprint changes must reach)."""
        return [s for s in self._sessions.values() if s.parts is not None and s.state is not SessionState.CLOSED]

    def running(self) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.state is SessionState.RUNNING]

    async def start(self, channel: Channel, started_by: discord.Member) -> LiveSession:
        guild = channel.guild
        settings = await self.settings_for(guild.id)
        # Checked and registered with no wait in between: a second /join sees this one at once.
        old = self._sessions.get(guild.id)
        if old is not None:
            if old.state is SessionState.STOPPING:
                raise SessionError("the last session here is still finishing", "try again in a few seconds")
            where = old.channel.mention if old.state is SessionState.RUNNING else "this server"
            raise SessionError(f"a session is already running in {where}", "use /leave first")
        session = LiveSession(guild=guild, channel=channel, started_by=started_by.id, settings=settings)
        self._sessions[guild.id] = session
        log.info("session in guild %s: starting in channel %s by %s", guild.id, channel.id, started_by.id)
        try:
            await self._open(session, started_by)
        except BaseException:
            if session.parts is None:  # nothing carries audio yet: what was taken is released
                self._sessions.pop(guild.id, None)
                session.move_to(SessionState.CLOSED)
            raise
        return session

    async def _open(self, session: LiveSession, started_by: discord.Member) -> None:
        guild, channel = session.guild, session.channel
        session.consents = await asyncio.to_thread(load_consents, self.db, guild.id)
        session.publish()
        transcriber = await self.transcriber()
        scheduler = await self.scheduler()
        verifier = await verifier_for_session(self.config, self.db, self.speaker_model)
        try:
            vc = await channel.connect(cls=ReceivingVoiceClient, self_deaf=False, timeout=30.0)
        except (TimeoutError, discord.ClientException, discord.ConnectionClosed, OSError) as exc:
            log.warning("joining voice channel %s in guild %s failed: %r", channel.id, guild.id, exc)
            raise SessionError(
                f"could not connect to {channel.mention}",
                "try again in a moment; if it keeps failing, check S-Talk's Connect permission there",
            ) from None
        epoch = time.monotonic()
        try:
            # A pipeline whose open() fails stops its transcription threads itself.
            pipeline = CallPipeline(
                self.config,
                transcriber,
                scheduler=scheduler,
                name=f"guild {guild.id}",
                recorder=CallRecorder(self.db),
                clock=WallClock(start=epoch),
                verifier=verifier,
            )
            await asyncio.to_thread(
                pipeline.open,
                NewSession(
                    source=SessionSource.DISCORD,
                    title=f"{guild.name} / {channel.name}"[:200],
                    language=self.config.asr.language,
                    asr_model=transcriber.name,
                    guild_id=str(guild.id),
                    channel_id=str(channel.id),
                    started_by=str(started_by.id),
                ),
            )
        except BaseException:
            await vc.disconnect(force=True)
            raise
        # The feeder thread names participants as they first speak, from the published snapshot.
        feeder = LiveFeeder(pipeline, lambda uid: session.presence.name_of(uid))
        session.parts = CallParts(vc=vc, pipeline=pipeline, feeder=feeder, epoch=epoch)
        try:
            for factory in self.listener_factories:
                try:
                    listener = factory(session)
                except Exception:  # an extra (hints) that cannot start must not stop transcription
                    log.exception("a session listener could not start in guild %s", guild.id)
                    continue
                if listener is not None:
                    pipeline.add_listener(listener)
                    session.attachments.listeners.append(listener)
            vad = self.config.vad
            # Told until a little past the end-of-utterance silence (window rounding).
            quiet = SilenceWatch(feeder, feeder.silent_until, tail=(vad.min_silence_ms + 100) / 1000)
            session.attachments.quiet = quiet
            # The notice goes out before the first packet is listened to.
            await self._announce(session, started_by)
            vc.listen(session.sink, opted_out=session.excluded(), epoch=epoch)
            session.attachments.quiet_task = asyncio.create_task(
                self._tick_quiet(quiet, epoch), name=f"quiet {guild.id}"
            )
            await self._mark_nick(session)
            session.move_to(SessionState.RUNNING)
        except BaseException as exc:
            await self.stop(guild.id, status=SessionStatus.FAILED, error=f"start failed: {type(exc).__name__}: {exc}")
            raise
        log.info(
            "session %s started in guild %s channel %s by %s", session.session_id, guild.id, channel.id, started_by.id
        )
        self.update_presence(guild.id)

    @staticmethod
    async def _tick_quiet(quiet: SilenceWatch, epoch: float) -> None:
        while True:
            # As often as the receiver polls: each tick is a few dict reads, and the end of an
            # utterance waits for the next one.
            await asyncio.sleep(0.02)
            quiet.tick(time.monotonic() - epoch)

    async def _start_transcript(self, session: LiveSession) -> str | None:
        """Start posting the live transcript; returns where (None: the voice channel's chat)."""
        target = await self._transcript_target(session)

        async def post(text: str) -> object:
            return await target.send(text, allowed_mentions=discord.AllowedMentions.none())

        extras = session.attachments
        extras.poster = TranscriptPoster(post, interval=self.config.discord.transcript_interval)
        session.pipeline.add_listener(extras.poster)
        extras.poster_task = asyncio.create_task(extras.poster.run(), name="live transcript")
        return None if target is session.channel else target.mention

    async def _stop_transcript(self, session: LiveSession) -> None:
        extras = session.attachments
        if extras.poster_task is not None:
            extras.poster_task.cancel()
            extras.poster_task = None
        if extras.poster is not None:
            session.pipeline.remove_listener(extras.poster)
            await extras.poster.flush(None)
            extras.poster = None

    async def _announce(self, session: LiveSession, started_by: discord.Member) -> None:
        where = await self._start_transcript(session) if session.settings.live_transcript else None
        text = consent.notice_text(
            started_by=started_by.mention,
            mode=session.settings.consent_mode,
            live_transcript=session.attachments.poster is not None,
            where=where,
        )
        try:
            await session.channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post the consent notice in %s: %s", session.channel.id, exc)

    async def _transcript_target(self, session: LiveSession) -> discord.Thread | Channel:
        """A new public thread in the guild's transcript channel if one is set (voice channels'
        own text chats cannot hold threads), else the voice channel's text chat."""
        channel_id = session.settings.transcript_channel_id
        text_channel = session.guild.get_channel(channel_id) if channel_id else None
        if isinstance(text_channel, discord.TextChannel):
            name = for_discord_plain(f"Transcript: {session.channel.name} #{session.session_id}", 100)
            try:
                return await text_channel.create_thread(
                    name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
                )
            except discord.HTTPException as exc:
                log.warning("could not create the transcript thread in %s: %s", channel_id, exc)
        return session.channel

    async def _mark_nick(self, session: LiveSession) -> None:
        suffix = self.config.discord.listening_suffix
        me = session.guild.me
        if not suffix or me is None:
            return
        session.attachments.previous_nick = me.nick
        base = me.nick or me.name
        try:
            await me.edit(nick=(base[: 32 - len(suffix)] + suffix))
            session.attachments.nick_changed = True
        except discord.HTTPException as exc:
            log.warning("could not mark the nickname in guild %s: %s", session.guild.id, exc)

    async def _restore_nick(self, session: LiveSession) -> None:
        me = session.guild.me
        if not session.attachments.nick_changed or me is None:
            return
        try:
            await me.edit(nick=session.attachments.previous_nick)
        except discord.HTTPException as exc:
            log.warning("could not restore the nickname in guild %s: %s", session.guild.id, exc)

    async def stop(
        self,
        guild_id: int,
        *,
        status: SessionStatus = SessionStatus.COMPLETED,
        error: str | None = None,
        reason: str | None = None,
    ) -> CallSummary | None:
        """Take the guild's session apart (the order in the module docstring). It stays
        registered, STOPPING, until it is CLOSED: /forget and consent changes still reach it.
        None when no session is running there (or another stop is already taking it apart)."""
        session = self._sessions.get(guild_id)
        if session is None or session.parts is None or session.state in (SessionState.STOPPING, SessionState.CLOSED):
            return None
        session.move_to(SessionState.STOPPING)
        try:
            await self._take_apart(session, status, error)
        finally:
            if self._sessions.get(guild_id) is session:
                del self._sessions[guild_id]
            session.move_to(SessionState.CLOSED)
        log.info(
            "session %s in guild %s ended (%s%s)", session.session_id, guild_id, status, f": {reason}" if reason else ""
        )
        summary = session.summary
        if summary is not None and summary.status != status:
            # The call could not be stored completely (a full disk, the database gone ...).
            log.error("session %s in guild %s: %s", session.session_id, guild_id, summary.error)
        if summary is not None and summary.unsaved_file:
            log.error("session %s: utterances the database refused are in %s", session.session_id, summary.unsaved_file)
        if reason:
            try:
                await session.channel.send(
                    f"S-Talk stopped transcribing ({reason}).", allowed_mentions=discord.AllowedMentions.none()
                )
            except discord.HTTPException:
                pass
        for hook in self.ended_hooks:
            try:
                await hook(session)
            except Exception:
                log.exception("after session %s ended: %s failed", session.session_id, getattr(hook, "__name__", hook))
        return summary

    async def _take_apart(self, session: LiveSession, status: SessionStatus, error: str | None) -> None:
        extras, guild_id = session.attachments, session.guild.id
        if extras.empty_timer is not None:
            extras.empty_timer.cancel()
            extras.empty_timer = None
        session.vc.stop_listening()  # buffered audio goes to the feeder first
        if extras.quiet_task is not None:
            extras.quiet_task.cancel()
            extras.quiet_task = None
        # No hint goes out once the session is ending. In a thread: a listener's worker may be
        # waiting on this event loop (a DM being sent) while it is joined.
        await asyncio.to_thread(self._close_listeners, session)
        # Leave at once; the utterances already heard are finished below, off the call.
        try:
            if session.vc.is_connected():
                await session.vc.disconnect(force=True)
        except Exception:
            log.exception("leaving voice in guild %s failed", guild_id)
        try:
            await asyncio.to_thread(session.feeder.close)
            # Waits for the utterances in flight: they are transcribed and stored before the row closes.
            session.summary = await asyncio.to_thread(session.pipeline.close, status, error)
            if self.config.summary.at_end and session.session_id is not None:
                # The extractive summary now (milliseconds), the model's in a daemon thread after.
                thread = await asyncio.to_thread(
                    summarize_at_end, self.db, session.session_id, summary_settings(self.config)
                )
                if thread is not None:
                    self._summaries = [t for t in self._summaries if t.is_alive()] + [thread]
        finally:
            await self._stop_transcript(session)
            await self._restore_nick(session)

    @staticmethod
    def _close_listeners(session: LiveSession) -> None:
        for listener in session.attachments.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing %s of session %s failed", type(listener).__name__, session.session_id)

    async def close_all(
        self, *, status: SessionStatus = SessionStatus.INTERRUPTED, error: str = "the bot was shut down"
    ) -> int:
        """Stop every running session and wait for those already stopping; returns how many
        were running."""
        running = self.running()
        stopping = [s for s in self._sessions.values() if s.state is SessionState.STOPPING]
        results = await asyncio.gather(
            *(self.stop(s.guild.id, status=status, error=error, reason="the bot is shutting down") for s in running),
            *(s.closed.wait() for s in stopping),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.error("stopping a session at shutdown failed: %r", result)
        await asyncio.to_thread(self._wait_for_summaries, SUMMARY_GRACE)
        return len(running)

    def _wait_for_summaries(self, seconds: float) -> None:
        """A model's summary that answers soon is stored; one that does not is left to the
        next start (``bot.summary.make.CatchUp``), which asks again."""
        deadline = time.monotonic() + seconds
        for thread in self._summaries:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._summaries):
            log.info("a model's summary was still being written at shutdown; the next start asks for it again")

    # -- cross-session operations --------------------------------------------------------

    async def forget_user(self, user_id: int) -> list[LiveSession]:
        """Stop listening to ``user_id`` in every session (running or stopping), for the rest of
        each, and discard what of theirs is still being transcribed: their stored rows can then
        be deleted without a late utterance failing on them. Returns the sessions they were in."""
        touched = []
        for session in self._sessions.values():
            session.forgotten.add(user_id)  # a session still starting ignores them from its first packet
        for session in self.reachable():
            session.publish()
            if session.attachments.quiet is not None:
                session.attachments.quiet.forget(user_id)
            if str(user_id) in {s.key for s in session.pipeline.speakers} or user_id in session.present():
                touched.append(session)
            await asyncio.to_thread(session.pipeline.forget_speaker, str(user_id))
        return touched

    async def forget(self, user_id: int, forgetters: Sequence[Forgetter]) -> Forgotten:
        """The whole /forget: stop listening to the user everywhere, delete their voiceprint
        (and the copies running verifiers hold), then run every ``Forgetter`` in a worker thread."""
        sessions = await self.forget_user(user_id)
        total = len(await self.delete_voiceprints(user_id))
        for forgetter in forgetters:
            total += await asyncio.to_thread(forgetter.delete, self.db, user_id)
        log.info("forgot user %s (%d rows)", user_id, total)
        return Forgotten(sessions, total)

    def voiceprint_added(self, vp: VoiceprintData, model: SpeakerModel, enrolled_in: LiveSession | None) -> None:
        """A voiceprint was stored: the call it was enrolled in verifies its owner at once;
        other calls that verify learn it too (to name them when they speak on someone else's mic)."""
        for session in self.reachable():
            try:
                if session is enrolled_in:
                    start_verifying(session.pipeline, model, vp, self.config)
                elif session.pipeline.verifier is not None:
                    session.pipeline.verifier.add_voiceprint(vp)
            except StalkError as exc:
                log.warning("session %s cannot use the new voiceprint: %s", session.session_id, exc)

    async def delete_voiceprints(self, user_id: int) -> list[str]:
        """Delete the user's stored voiceprints and the copies running verifiers hold; their names."""
        names = await asyncio.to_thread(delete_user_voiceprints, self.db, str(user_id))
        for session in self.reachable():
            verifier = session.pipeline.verifier
            if verifier is not None:
                for name in names:
                    verifier.remove_voiceprint(name)
        log.info("deleted the voiceprint of user %s (%s)", user_id, ", ".join(names) or "none")
        return names

    def channel_moved(self, guild_id: int, channel: Channel) -> None:
        """The bot was moved to another voice channel (by a moderator): follow who is in it."""
        session = self._sessions.get(guild_id)
        if session is not None and session.channel != channel:
            log.info("session %s in guild %s moved to channel %s", session.session_id, guild_id, channel.id)
            session.channel = channel
            self.update_presence(guild_id)

    async def consent_changed(self, guild_id: int) -> None:
        session = self._sessions.get(guild_id)
        if session is not None:
            session.consents = await asyncio.to_thread(load_consents, self.db, guild_id)
            session.publish()

    async def settings_changed(self, guild_id: int) -> None:
        session = self._sessions.get(guild_id)
        if session is None:
            return
        session.settings = await self.settings_for(guild_id)
        session.publish()
        if session.state is not SessionState.RUNNING:
            return
        # The live transcript follows the setting at once, in the running session too.
        poster = session.attachments.poster
        if session.settings.live_transcript and poster is None:
            where = await self._start_transcript(session)
            try:
                here = f"in {where}" if where else "here"
                await session.channel.send(
                    f"A live transcript of this session is now posted {here}.",
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except discord.HTTPException as exc:
                log.warning("could not announce the live transcript in %s: %s", session.channel.id, exc)
        elif not session.settings.live_transcript and poster is not None:
            await self._stop_transcript(session)

    def update_presence(self, guild_id: int) -> None:
        """Someone joined or left voice in the guild: publish who is there (names, the deny
        list) and run the empty-channel timer."""
        session = self._sessions.get(guild_id)
        if session is None:
            return
        session.publish()
        if session.state is not SessionState.RUNNING:
            return
        extras = session.attachments
        if session.present():
            if extras.empty_timer is not None:
                extras.empty_timer.cancel()
                extras.empty_timer = None
        elif extras.empty_timer is None:
            extras.empty_timer = asyncio.create_task(
                self._leave_when_empty(guild_id, session), name=f"auto-leave {guild_id}"
            )

    async def _leave_when_empty(self, guild_id: int, session: LiveSession) -> None:
        await asyncio.sleep(self.config.discord.auto_leave_seconds)
        if session.state is SessionState.RUNNING and not session.present():
            session.attachments.empty_timer = None  # stop() must not cancel the task running it
            await self.stop(guild_id, reason="the channel was empty")
