"""/settings: a guild's consent mode, live transcript and manager role (administrators always allowed)."""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from bot.discordbot.kit import CommandRefused, guild_member
from bot.discordbot.permissions import may_configure, requirement
from storage.settings import GuildSettingsInfo, update_guild_settings
from storage.vocab import ConsentMode


def describe(s: GuildSettingsInfo) -> str:
    mode = (
        "notice (everyone is transcribed unless they /optout)"
        if s.consent_mode == ConsentMode.NOTICE
        else "opt-in (only people who used /optin are transcribed)"
    )
    role = f"<@&{s.manager_role_id}>" if s.manager_role_id else "none (anyone may /join and /leave)"
    where = f"a thread in <#{s.transcript_channel_id}>" if s.transcript_channel_id else "the voice channel's chat"
    return (
        f"**S-Talk settings**\n- consent mode: {mode}\n- live transcript: "
        f"{'on, in ' + where if s.live_transcript else 'off'}\n- manager role: {role}"
    )


@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings", group_description="S-Talk settings for this server"):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot
        super().__init__()

    async def _check(self, interaction: discord.Interaction) -> GuildSettingsInfo:
        guild, member = guild_member(interaction, "This command works in a server.")
        settings = await self.bot.sessions.settings_for(guild.id)
        if not may_configure(member, settings):
            raise CommandRefused(f"Changing S-Talk's settings needs {requirement(settings, configure=True)}.")
        return settings

    async def _update(self, interaction: discord.Interaction, **changes: object) -> None:
        assert interaction.guild_id is not None
        await asyncio.to_thread(update_guild_settings, self.bot.db, interaction.guild_id, **changes)
        await self.bot.sessions.settings_changed(interaction.guild_id)
        settings = await self.bot.sessions.settings_for(interaction.guild_id)
        await interaction.response.send_message("Saved.\n" + describe(settings), ephemeral=True)

    @app_commands.command(name="show", description="Show this server's S-Talk settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self._check(interaction)
        await interaction.response.send_message(describe(settings), ephemeral=True)

    @app_commands.command(
        name="consent", description="Who is transcribed: everyone unless they opt out, or only those who opt in"
    )
    @app_commands.describe(mode="notice: everyone unless /optout; opt_in: only people who used /optin")
    async def consent(self, interaction: discord.Interaction, mode: Literal["notice", "opt_in"]) -> None:
        await self._check(interaction)
        # A Literal, not the enum: Discord shows the choices as their values.
        await self._update(interaction, consent_mode=ConsentMode(mode))

    @app_commands.command(name="transcript", description="Post a live transcript while S-Talk listens")
    @app_commands.describe(
        state="on or off",
        channel="text channel to open the transcript threads in (default: the voice channel's own chat)",
    )
    async def transcript(
        self, interaction: discord.Interaction, state: Literal["on", "off"], channel: discord.TextChannel | None = None
    ) -> None:
        await self._check(interaction)
        await self._update(
            interaction, live_transcript=state == "on", transcript_channel_id=None if channel is None else channel.id
        )

    @app_commands.command(
        name="role", description="The role allowed to start, stop and configure S-Talk (administrators always are)"
    )
    @app_commands.describe(role="leave empty to clear it")
    async def role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        await self._check(interaction)
        await self._update(interaction, manager_role_id=None if role is None else role.id)


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(SettingsCog(bot))
