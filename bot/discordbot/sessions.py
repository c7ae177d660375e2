"""Live sessions: one per guild, each owning a voice connection, a speech pipeline and its listeners.

``SessionManager.start`` joins a voice channel and wires receiver -> LiveFeeder -> CallPipeline
-> storage (and the live transcript); ``stop`` takes it apart in the order that loses nothing:
stop receiving (buffered audio is flushed), feed what is queued, let the pipeline finish the
utterances in flight, close the session row, then leave voice.

Phase-2 features attach through ``SessionManager.listener_factories``: each factory is called
with the new ``LiveSession`` before audio flows and may return a PipelineListener (hint DMs,
speaker verification) or None; a listener with a ``close()`` is closed when the session ends
(leave, auto-leave, kick, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import discord

from bot.asr.transcriber import WhisperTranscriber
from bot.audio.frames import PcmFrame
from bot.clock import WallClock
from bot.config import Config
from bot.discordbot import consent
from bot.discordbot.quiet import QuietFiller
from bot.discordbot.transcript import TranscriptPoster
from bot.discordbot.voices import SpeakerModelSlot, verifier_for_session
from bot.errors import StalkError
from bot.live import LiveFeeder
from bot.pipeline import CallPipeline, CallSummary, PipelineListener
from bot.plaintext import for_discord_plain, plain
from bot.speaker.model import SpeakerModel
from bot.voice.client import ReceivingVoiceClient
from storage.db import Database
from storage.recorder import CallRecorder
from storage.records import NewSession
from storage.settings import Consents, GuildSettingsInfo, guild_settings
from storage.settings import consents as load_consents

log = logging.getLogger(__name__)

ListenerFactory = Callable[["LiveSession"], "PipelineListener | None"]


def member_name(member: discord.abc.User) -> str:
    """A participant's name as stored and shown: their display name made plain (no control or
    invisible characters, one line, at most 64 characters); their id if nothing is left."""
    return plain(member.display_name, 64) or str(member.id)


class SessionError(StalkError):
    """A session cannot start or stop; ``str()`` is said to the user."""


@dataclass
class LiveSession:
    guild: discord.Guild
    channel: discord.VoiceChannel | discord.StageChannel
    vc: ReceivingVoiceClient
    pipeline: CallPipeline
    feeder: LiveFeeder
    settings: GuildSettingsInfo
    consents: Consents
    started_by: int
    epoch: float
    names: dict[int, str] = field(default_factory=dict)
    poster: TranscriptPoster | None = None
    poster_task: asyncio.Task[None] | None = None
    quiet: QuietFiller | None = None
    quiet_task: asyncio.Task[None] | None = None
    empty_timer: asyncio.Task[None] | None = None
    previous_nick: str | None = None
    nick_changed: bool = False
    bots: set[int] = field(default_factory=set)
    forgotten: set[int] = field(default_factory=set)  # used /forget: ignored for the rest of the session
    summary: CallSummary | None = None
    attached: list[PipelineListener] = field(default_factory=list)  # from listener_factories; closed at stop

    @property
    def session_id(self) -> int | None:
        return self.pipeline.session_id

    def present(self) -> list[int]:
        """Users (not bots) now in the voice channel."""
        return [m.id for m in self.channel.members if not m.bot]

    def excluded(self) -> set[int]:
        # Other bots (music, soundboards) are never transcribed: they are not people in the call.
        self.bots = {m.id for m in self.channel.members if m.bot}
        return consent.excluded(self.present(), self.settings.consent_mode, self.consents) | self.bots | self.forgotten

    def sink(self, user_id: int, frame: PcmFrame) -> None:
        # The receiver already drops excluded users before decoding; this catches anyone whose
        # consent state changed between two updates of its list, so nothing unconsented is stored.
        if (
            user_id in self.bots
            or user_id in self.forgotten
            or not consent.is_processed(user_id, self.settings.consent_mode, self.consents)
        ):
            return
        (self.quiet or self.feeder)(user_id, frame)

    def refresh_consent(self, consents: Consents | None = None) -> None:
        """Apply new consent choices (or a changed member list) to the running receiver."""
        if consents is not None:
            self.consents = consents
        self.vc.set_opted_out(self.excluded())

    def add_listener(self, listener: PipelineListener) -> None:
        """Attach a listener to the running pipeline (e.g. /enroll collecting a user's speech).

        The pipeline owns its listeners; worker threads delivering an event are not disturbed."""
        self.pipeline.add_listener(listener)

    def remove_listener(self, listener: PipelineListener) -> None:
        self.pipeline.remove_listener(listener)


class SessionManager:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        transcriber: WhisperTranscriber | None = None,
        speaker_model: SpeakerModel | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self._transcriber = transcriber
        self.speaker_model = SpeakerModelSlot(config, speaker_model)  # shared by every guild's session
        self._model_lock = asyncio.Lock()
        self.sessions: dict[int, LiveSession] = {}
        self._starting: set[int] = set()
        self.listener_factories: list[ListenerFactory] = []

    # -- model ---------------------------------------------------------------------------

    async def transcriber(self) -> WhisperTranscriber:
        """Whisper, loaded once on first use and shared by every guild's session."""
        async with self._model_lock:
            if self._transcriber is None:
                self._transcriber = await asyncio.to_thread(WhisperTranscriber.from_config, self.config)
            return self._transcriber

    # -- settings ------------------------------------------------------------------------

    async def settings_for(self, guild_id: int) -> GuildSettingsInfo:
        d = self.config.discord
        return await asyncio.to_thread(
            guild_settings, self.db, guild_id, default_mode=d.consent_mode, default_live=d.live_transcript
        )

    # -- start / stop --------------------------------------------------------------------

    def get(self, guild_id: int) -> LiveSession | None:
        return self.sessions.get(guild_id)

    async def start(
        self, channel: discord.VoiceChannel | discord.StageChannel, started_by: discord.Member
    ) -> LiveSession:
        guild = channel.guild
        if guild.id in self.sessions or guild.id in self._starting:
            where = self.sessions[guild.id].channel.mention if guild.id in self.sessions else "this server"
            raise SessionError(f"a session is already running in {where}", "use /leave first")
        self._starting.add(guild.id)
        try:
            return await self._start(channel, started_by)
        finally:
            self._starting.discard(guild.id)

    async def _start(
        self, channel: discord.VoiceChannel | discord.StageChannel, started_by: discord.Member
    ) -> LiveSession:
        guild = channel.guild
        settings = await self.settings_for(guild.id)
        consents = await asyncio.to_thread(load_consents, self.db, guild.id)
        transcriber = await self.transcriber()
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
            pipeline = CallPipeline(
                self.config,
                transcriber,
                recorder=CallRecorder(self.db),
                clock=WallClock(start=epoch),
                verifier=verifier,
            )
            await asyncio.to_thread(
                pipeline.open,
                NewSession(
                    source="discord",
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
        names = {m.id: member_name(m) for m in channel.members}
        # The feeder thread reads names as participants first speak; the event loop keeps them current.
        feeder = LiveFeeder(pipeline, lambda uid: names.get(uid, str(uid)))
        session = LiveSession(
            guild=guild,
            channel=channel,
            vc=vc,
            pipeline=pipeline,
            feeder=feeder,
            settings=settings,
            consents=consents,
            started_by=started_by.id,
            epoch=epoch,
            names=names,
        )
        for factory in self.listener_factories:
            try:
                listener = factory(session)
            except Exception:  # an extra (hints) that cannot start must not stop transcription
                log.exception("a session listener could not start in guild %s", guild.id)
                continue
            if listener is not None:
                session.add_listener(listener)
                session.attached.append(listener)
        vad = self.config.vad
        session.quiet = QuietFiller(feeder, tail=(vad.min_silence_ms + vad.speech_pad_ms + 100) / 1000)
        self.sessions[guild.id] = session
        try:
            # The notice goes out before the first packet is listened to.
            await self._announce(session, started_by)
            vc.listen(session.sink, opted_out=session.excluded(), epoch=epoch)
            session.quiet_task = asyncio.create_task(self._tick_quiet(session), name=f"quiet {guild.id}")
            await self._mark_nick(session)
        except BaseException as exc:
            await self.stop(guild.id, status="failed", error=f"start failed: {type(exc).__name__}: {exc}")
            raise
        log.info(
            "session %s started in guild %s channel %s by %s", session.session_id, guild.id, channel.id, started_by.id
        )
        self.update_presence(guild.id)
        return session

    async def _tick_quiet(self, session: LiveSession) -> None:
        assert session.quiet is not None
        while True:
            await asyncio.sleep(0.1)
            session.quiet.tick(time.monotonic() - session.epoch)

    async def _start_transcript(self, session: LiveSession) -> str | None:
        """Start posting the live transcript; returns where (None: the voice channel's chat)."""
        target = await self._transcript_target(session)

        async def post(text: str) -> object:
            return await target.send(text, allowed_mentions=discord.AllowedMentions.none())

        session.poster = TranscriptPoster(
            post,
            interval=self.config.discord.transcript_interval,
        )
        session.add_listener(session.poster)
        session.poster_task = asyncio.create_task(session.poster.run(), name="live transcript")
        return None if target is session.channel else target.mention

    async def _stop_transcript(self, session: LiveSession) -> None:
        if session.poster_task is not None:
            session.poster_task.cancel()
            session.poster_task = None
        if session.poster is not None:
            session.remove_listener(session.poster)
            await session.poster.flush(None)
            session.poster = None

    async def _announce(self, session: LiveSession, started_by: discord.Member) -> None:
        where = await self._start_transcript(session) if session.settings.live_transcript else None
        text = consent.notice_text(
            started_by=started_by.mention,
            mode=session.settings.consent_mode,
            live_transcript=session.poster is not None,
            where=where,
        )
        try:
            await session.channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post the consent notice in %s: %s", session.channel.id, exc)

    async def _transcript_target(
        self, session: LiveSession
    ) -> discord.Thread | discord.VoiceChannel | discord.StageChannel:
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
        session.previous_nick = me.nick
        base = me.nick or me.name
        try:
            await me.edit(nick=(base[: 32 - len(suffix)] + suffix))
            session.nick_changed = True
        except discord.HTTPException as exc:
            log.warning("could not mark the nickname in guild %s: %s", session.guild.id, exc)

    async def _restore_nick(self, session: LiveSession) -> None:
        me = session.guild.me
        if not session.nick_changed or me is None:
            return
        try:
            await me.edit(nick=session.previous_nick)
        except discord.HTTPException as exc:
            log.warning("could not restore the nickname in guild %s: %s", session.guild.id, exc)

    async def stop(
        self, guild_id: int, *, status: str = "completed", error: str | None = None, reason: str | None = None
    ) -> CallSummary | None:
        session = self.sessions.pop(guild_id, None)
        if session is None:
            return None
        if session.empty_timer is not None:
            session.empty_timer.cancel()
        session.vc.stop_listening()  # buffered audio goes to the feeder first
        if session.quiet_task is not None:
            session.quiet_task.cancel()
        # No hint goes out once the session is ending. In a thread: a listener's worker may be
        # waiting on this event loop (a DM being sent) while it is joined.
        await asyncio.to_thread(self._close_attached, session)
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
        finally:
            await self._stop_transcript(session)
            await self._restore_nick(session)
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
        return session.summary

    @staticmethod
    def _close_attached(session: LiveSession) -> None:
        for listener in session.attached:
            close = getattr(listener, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing %s of session %s failed", type(listener).__name__, session.session_id)

    async def close_all(self, *, status: str = "interrupted", error: str = "the bot was shut down") -> int:
        """Stop every session; returns how many there were."""
        results = await asyncio.gather(
            *(
                self.stop(gid, status=status, error=error, reason="the bot is shutting down")
                for gid in list(self.sessions)
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.error("stopping a session at shutdown failed: %r", result)
        return len(results)

    # -- consent and presence ------------------------------------------------------------

    async def forget_user(self, user_id: int) -> list[LiveSession]:
        """Stop listening to ``user_id`` in every running session, for the rest of each, and
        discard what of theirs is still being transcribed: their stored rows can then be
        deleted without a late utterance failing on them. Returns the sessions they were in."""
        touched = []
        for session in list(self.sessions.values()):
            session.forgotten.add(user_id)
            session.refresh_consent()
            if session.quiet is not None:
                session.quiet.forget(user_id)
            if str(user_id) in {s.key for s in session.pipeline.speakers} or user_id in session.present():
                touched.append(session)
            await asyncio.to_thread(session.pipeline.forget_speaker, str(user_id))
        return touched

    async def consent_changed(self, guild_id: int) -> None:
        session = self.sessions.get(guild_id)
        if session is not None:
            session.refresh_consent(await asyncio.to_thread(load_consents, self.db, guild_id))

    async def settings_changed(self, guild_id: int) -> None:
        session = self.sessions.get(guild_id)
        if session is not None:
            session.settings = await self.settings_for(guild_id)
            session.refresh_consent()
            # The live transcript follows the setting at once, in the running session too.
            if session.settings.live_transcript and session.poster is None:
                where = await self._start_transcript(session)
                try:
                    here = f"in {where}" if where else "here"
                    await session.channel.send(
                        f"A live transcript of this session is now posted {here}.",
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
                except discord.HTTPException as exc:
                    log.warning("could not announce the live transcript in %s: %s", session.channel.id, exc)
            elif not session.settings.live_transcript and session.poster is not None:
                await self._stop_transcript(session)

    def update_presence(self, guild_id: int) -> None:
        """Someone joined or left voice in the guild: refresh names, the opt-in deny list and
        the empty-channel timer."""
        session = self.sessions.get(guild_id)
        if session is None:
            return
        session.names.update({m.id: member_name(m) for m in session.channel.members})
        session.refresh_consent()
        if session.present():
            if session.empty_timer is not None:
                session.empty_timer.cancel()
                session.empty_timer = None
        elif session.empty_timer is None:
            session.empty_timer = asyncio.create_task(
                self._leave_when_empty(guild_id, session), name=f"auto-leave {guild_id}"
            )

    async def _leave_when_empty(self, guild_id: int, session: LiveSession) -> None:
        await asyncio.sleep(self.config.discord.auto_leave_seconds)
        if self.sessions.get(guild_id) is session and not session.present():
            session.empty_timer = None  # stop() must not cancel the task running it
            await self.stop(guild_id, reason="the channel was empty")
