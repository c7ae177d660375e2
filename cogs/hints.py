"""/hints on|off: whether S-Talk may send you private topic hints during calls (stored per user).

The hints themselves (lull detection, the LLM, delivery by DM) are the hints issue's; a
session's hint listener reads this setting through ``storage.settings.hint_recipients``.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from storage.settings import set_hints


class HintsCog(commands.Cog):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot

    @app_commands.command(name="hints", description="Turn private topic hints during calls on or off for you")
    @app_commands.describe(state="on: S-Talk may DM you topic ideas when your call lulls; off: never")
    async def hints(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        on = state == "on"
        await asyncio.to_thread(set_hints, self.bot.db, interaction.user.id, on)
        text = (
            "Hints are on: when a call you are in goes quiet, S-Talk may send you a topic idea in a direct "
            "message. /hints off stops them."
            if on
            else "Hints are off: S-Talk will not send you topic ideas."
        )
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(HintsCog(bot))
