"""/join and /leave, and following who is in the call (auto-leave, opt-in lists, names)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from bot.discordbot.kit import CommandRefused, guild_member
from bot.discordbot.permissions import may_run_sessions, requirement
from bot.discordbot.sessions import SessionError
from storage.vocab import plural


class VoiceCog(commands.Cog):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot

    async def _check_may_run(self, interaction: discord.Interaction) -> tuple[discord.Guild, discord.Member]:
        guild, member = guild_member(interaction, "This command works in a server, not in direct messages.")
        settings = await self.bot.sessions.settings_for(guild.id)
        if not may_run_sessions(member, settings):
            raise CommandRefused(f"Starting and stopping S-Talk here needs {requirement(settings, configure=False)}.")
        return guild, member

    @app_commands.command(name="join", description="Join your voice channel and start transcribing it")
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction) -> None:
        _, member = await self._check_may_run(interaction)
        channel = member.voice.channel if member.voice else None
        if channel is None:
            raise CommandRefused("Join a voice channel first, then use /join.")
        me = channel.guild.me
        if me is not None:
            perms = channel.permissions_for(me)
            if not perms.connect:
                raise CommandRefused(
                    f"I am not allowed to connect to {channel.mention}; give S-Talk the Connect permission there."
                )
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            session = await self.bot.sessions.start(channel, member)
        except SessionError as exc:
            raise CommandRefused(f"Cannot start: {exc}.") from None
        await interaction.followup.send(
            f"Transcribing {channel.mention} (session {session.session_id}). Use /leave to stop.", ephemeral=True
        )

    @app_commands.command(name="leave", description="Stop transcribing and leave the voice channel")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        guild, member = await self._check_may_run(interaction)
        if self.bot.sessions.get(guild.id) is None:
            raise CommandRefused("S-Talk is not in a voice channel in this server.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        summary = await self.bot.sessions.stop(guild.id, reason=f"/leave by {member.mention}")
        if summary is None:
            await interaction.followup.send("The session had already ended.", ephemeral=True)
            return
        kept = sum(s.utterances for s in summary.speakers.values())
        await interaction.followup.send(
            f"Stopped. Session {summary.session_id}: {plural(kept, 'utterance')} stored.", ephemeral=True
        )

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        manager = self.bot.sessions
        session = manager.get(member.guild.id)
        if session is None:
            return
        if self.bot.user is not None and member.id == self.bot.user.id:
            if after.channel is None:
                await manager.stop(member.guild.id, reason="the bot was disconnected from voice")
                return
            if isinstance(after.channel, discord.VoiceChannel | discord.StageChannel):
                manager.channel_moved(member.guild.id, after.channel)  # by a moderator: follow it
        manager.update_presence(member.guild.id)


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(VoiceCog(bot))
