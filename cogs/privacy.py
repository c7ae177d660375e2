"""/privacy, /optout, /optin and /forget."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from bot.discordbot.kit import ConfirmView, guild_member
from storage.settings import set_consent
from storage.vocab import ConsentChoice, plural

log = logging.getLogger(__name__)

PRIVACY_TEXT = """**What S-Talk stores, and for how long**
- While a session runs in a voice channel, each participant's speech (unless they opted out, or did not opt in where the server requires it) is transcribed. Stored: the text, when it was said in the call, the speaker's display name and Discord user id, the detected language, and the session (server, channel, start and end). **Audio is never stored.**
- Your settings: whether you want private hints, and your /optin or /optout choice per server.
- If you use `/enroll`: your voiceprint (numbers describing how your voice sounds, computed from your speech while you enrolled; no audio), kept until `/voiceprint delete` or `/forget`. Once you are enrolled, each of your utterances is stored with whether it sounded like you, and if not, a label such as "guest on <your name>'s mic".
- {retention} Whoever started a call, the server's administrators and the bot's operator can delete it (`/log delete`); `/log list` shows the calls you were in. `/forget` deletes {forget}.
- `/optout` stops processing your voice in this server at once (your voice packets are dropped before they are decoded); `/optin` resumes it."""

FORGET_TIMEOUT = 60.0


class PrivacyCog(commands.Cog):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot

    def forget_scope(self) -> str:
        return ", ".join(f.what for f in self.bot.forgetters)

    def retention_text(self) -> str:
        days = self.bot.config.retention.max_age_days
        if days <= 0:
            return "Transcripts are kept until they are deleted (this bot's operator set no maximum age)."
        return (
            f"Transcripts are deleted automatically {days} day{'s' if days != 1 else ''} after their call "
            "started, or earlier when they are deleted."
        )

    @app_commands.command(name="privacy", description="What S-Talk stores about you and for how long")
    async def privacy(self, interaction: discord.Interaction) -> None:
        text = PRIVACY_TEXT.format(forget=self.forget_scope(), retention=self.retention_text())
        await interaction.response.send_message(text, ephemeral=True)

    async def _consent(self, interaction: discord.Interaction, choice: ConsentChoice) -> None:
        guild, member = guild_member(interaction, "Use this in the server where you want it to apply.")
        await asyncio.to_thread(set_consent, self.bot.db, guild.id, member.id, choice)
        await self.bot.sessions.consent_changed(guild.id)

    @app_commands.command(name="optout", description="Stop S-Talk from processing your voice in this server")
    @app_commands.guild_only()
    async def optout(self, interaction: discord.Interaction) -> None:
        await self._consent(interaction, ConsentChoice.OPT_OUT)
        await interaction.response.send_message(
            "Done: S-Talk ignores your voice in this server from now on (your packets are dropped before "
            "decoding). /optin resumes it.",
            ephemeral=True,
        )

    @app_commands.command(name="optin", description="Let S-Talk process your voice in this server")
    @app_commands.guild_only()
    async def optin(self, interaction: discord.Interaction) -> None:
        await self._consent(interaction, ConsentChoice.OPT_IN)
        await interaction.response.send_message(
            "Done: your speech in this server's calls is transcribed while S-Talk is in them. /optout stops it.",
            ephemeral=True,
        )

    @app_commands.command(name="forget", description="Delete what S-Talk stores about you")
    async def forget_command(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id

        async def confirmed(_: discord.Interaction) -> str:
            return await self.forget(user_id)

        view = ConfirmView(user_id, confirmed, label="Delete", prefix="forget", timeout=FORGET_TIMEOUT)
        await interaction.response.send_message(
            f"This deletes {self.forget_scope()}. It cannot be undone.", view=view, ephemeral=True
        )
        view.message_of = interaction

    async def forget(self, user_id: int) -> str:
        """The whole sequence is the session manager's (running sessions stop listening first,
        so nothing of the user's is stored after the deletion); this says what was done."""
        done = await self.bot.sessions.forget(user_id, self.bot.forgetters)
        text = (
            f"Deleted {plural(done.deleted, 'stored item')} about you. Your /optout choices are kept so that "
            "S-Talk keeps ignoring your voice where you asked it to."
        )
        if done.sessions:
            text += (
                f" S-Talk has also stopped listening to you in {', '.join(s.channel.mention for s in done.sessions)} "
                "for the rest of the session running there."
            )
        return text


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
