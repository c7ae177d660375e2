"""/summary on|off: whether S-Talk sends you a call's summary by DM when a call you were in
ends (stored per user, off until you turn it on). Anyone in a call may read its summary
with /log summary either way."""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from storage.settings import set_summary_dm


class SummaryCog(commands.Cog):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot

    @app_commands.command(name="summary", description="Get a call's summary by DM when a call you were in ends")
    @app_commands.describe(state="on: a DM with the summary after each call you were in; off: none (the default)")
    async def summary(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        on = state == "on"
        await asyncio.to_thread(set_summary_dm, self.bot.db, interaction.user.id, on)
        text = (
            "Summaries are on: when a call you were in ends, S-Talk sends you its summary in a direct message. "
            "/summary off stops them."
            if on
            else "Summaries by DM are off. /log summary still shows the summary of any call you were in."
        )
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(SummaryCog(bot))
