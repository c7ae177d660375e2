"""The discord.py client: cogs, slash-command sync, error replies, and an orderly shutdown."""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.asr.scheduler import Backend
from bot.config import Config
from bot.discordbot.dm import DirectMessenger
from bot.discordbot.forget import Forgetter, default_forgetters
from bot.discordbot.hintdms import attach_hints
from bot.discordbot.kit import CommandRefused
from bot.discordbot.sessions import SessionManager
from bot.discordbot.summarydms import attach_summary_dms
from bot.errors import StalkError
from bot.metricsserver import MetricsServer
from bot.speaker.model import SpeakerModel
from bot.summary.make import CatchUp, summary_settings
from storage.db import Database
from storage.recorder import CallRecorder
from storage.retention import RetentionWorker
from storage.vocab import plural

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.voice", "cogs.privacy", "cogs.hints", "cogs.settings", "cogs.enroll", "cogs.log", "cogs.summary")


def intents() -> discord.Intents:
    # Guilds: channels and roles; voice states: who is in a call (opt-in lists, auto-leave).
    # No members or message-content intent: names come with voice states and interactions.
    it = discord.Intents.none()
    it.guilds = True
    it.voice_states = True
    return it


class StalkBot(commands.Bot):
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        transcriber: Backend | None = None,
        connector: aiohttp.BaseConnector | None = None,
        sync_commands: bool = True,
        speaker_model: SpeakerModel | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            connector=connector,
            **self._shard_options(config),
        )
        self.config = config
        self.db = db
        self.sessions = SessionManager(config, db, transcriber=transcriber, speaker_model=speaker_model)
        self.sync_commands = sync_commands
        self.messenger = DirectMessenger(self)
        attach_hints(self.sessions, self.messenger)  # private topic hints at lulls, by DM
        attach_summary_dms(self.sessions, self.messenger)  # the call's summary by DM at its end (/summary on)
        self.synced: list[app_commands.AppCommand] = []
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        self._closing = False
        self.interrupted = 0  # calls in progress that close() stopped
        # /forget runs each of these in a worker thread (SessionManager.forget): what it deletes,
        # and (db, user_id) -> rows deleted. /forget and /privacy name exactly what is listed here.
        self.forgetters: list[Forgetter] = default_forgetters()
        self.retention: RetentionWorker | None = None
        self.catch_up: CatchUp | None = None
        self.metrics_server: MetricsServer | None = None  # [metrics] enabled: set by start_metrics

    @staticmethod
    def _shard_options(config: Config) -> dict[str, Any]:
        return {}

    async def setup_hook(self) -> None:
        # One bot per database: any session still 'active' was left by a process that died.
        await asyncio.to_thread(CallRecorder(self.db).close_stale_sessions)
        # After closing stale sessions, so the first purge can take those that have expired.
        keep = self.config.retention
        if keep.max_age_days > 0:
            self.retention = RetentionWorker(self.db, keep.max_age_days, keep.check_hours * 3600)
            self.retention.start()
        # Calls whose model summary this process never got to write (it stopped mid-call or
        # while the model was writing): asked for again in the background, newest first.
        settings = summary_settings(self.config)
        if self.config.summary.at_end and settings is not None:
            self.catch_up = CatchUp(self.db, settings)
            try:
                await asyncio.to_thread(self.catch_up.start)
            except Exception:
                log.exception("looking for calls without a model summary failed")
        for ext in EXTENSIONS:
            await self.load_extension(ext)
        if self.sync_commands:
            await self.sync_tree()

    async def sync_tree(self) -> list[app_commands.AppCommand]:
        guild_id = self.config.discord.test_guild
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced = await self.tree.sync(guild=guild)
            log.info("slash commands synced to test guild %s (%d commands)", guild_id, len(self.synced))
        else:
            self.synced = await self.tree.sync()
            log.info(
                "slash commands synced globally (%d commands); Discord may take a while to show them", len(self.synced)
            )
        return self.synced

    async def on_ready(self) -> None:
        # The one line a person running the bot waits for (logging stays at warnings by default).
        print(f"S-Talk is online as {self.user} in {plural(len(self.guilds), 'server')}; Ctrl+C stops it", flush=True)

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, (CommandRefused, StalkError)):
            text = str(original)
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You are not allowed to use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed (guild %s, channel %s, user %s):\n%s",
                command,
                interaction.guild_id,
                interaction.channel_id,
                interaction.user.id,
                "".join(traceback.format_exception(original)),
            )
            text = (
                "Sorry, that did not work because of a problem on S-Talk's side. It has been logged; "
                "please try again later."
            )
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell the user that /%s failed", interaction.command)

    async def close(self) -> None:
        """Leave every call (finishing the utterances in flight and closing their sessions) first."""
        if not self._closing:
            self._closing = True
            try:
                self.interrupted = await self.sessions.close_all()
            except Exception:
                log.exception("closing sessions at shutdown failed")
            await asyncio.to_thread(self.sessions.close_transcription, 30.0)
            if self.retention is not None:
                # A purge in progress finishes its batch (one transaction) first.
                await asyncio.to_thread(self.retention.stop, 30.0)
            if self.catch_up is not None:
                # A model answer in flight is not waited for: the next start asks again.
                await asyncio.to_thread(self.catch_up.stop, 1.0)
        await super().close()


class ShardedStalkBot(StalkBot, commands.AutoShardedBot):
    """The same bot on several gateway connections (``[discord] shards``): discord.py's
    AutoShardedClient, which routes each guild's events and voice connection through its shard.
    Everything above the client (sessions, cogs, the pipeline) is unchanged: a guild's call
    lives in the process that runs the guild's shard."""

    @staticmethod
    def _shard_options(config: Config) -> dict[str, Any]:
        d = config.discord
        # shard_count None: discord.py asks Discord for the recommended count (GET /gateway/bot).
        return {"shard_count": d.shard_count, "shard_ids": list(d.shard_ids) or None}

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("gateway shard %d of %s is ready", shard_id, self.shard_count)


def build_bot(config: Config, db: Database, **options: Any) -> StalkBot:
    """The bot ``[discord] shards`` asks for: one gateway connection (off) or sharded."""
    cls = ShardedStalkBot if config.discord.sharded else StalkBot
    return cls(config, db, **options)
