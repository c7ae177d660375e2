"""/enroll (a voiceprint from your speech in the running call), /voiceprint status and delete.

The enrolment listens to the pipeline's own speech segments of the invoker (``LiveEnrollment``)
until it has heard ``[speaker] min_enroll_speech_s`` of net speech or ``enroll_timeout_s`` ran
out, showing progress by editing the ephemeral reply; the gates and the embedding run in a
worker thread. The voiceprint is stored under the user's id and the running session starts
verifying them at once.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from bot.discordbot.kit import CommandRefused, ConfirmView, guild_member
from bot.discordbot.sessions import LiveSession, SessionState
from bot.errors import StalkError
from bot.live_enrollment import LiveEnrollment
from bot.speaker.enrollment import EnrollmentError, EnrollmentResult
from storage.db import Database
from storage.plaintext import for_discord, plain
from storage.voiceprints import VoiceprintData, get_voiceprint, get_voiceprint_by_user, save_voiceprint

log = logging.getLogger(__name__)

PROGRESS_EVERY = 2.5  # seconds between edits of the reply: well inside Discord's rate limits
CONFIRM_TIMEOUT = 60.0
FULL, EMPTY = "\u25b0", "\u25b1"  # the progress bar's cells

PROMPT = (
    "The old harbour wakes up slowly every morning. Fishing boats drift past the stone wall while gulls "
    "circle over the market. By noon the square is full of voices, bicycles and the smell of fresh bread. "
    "I could spend a whole summer there, reading, walking and watching the tide come in."
)

# What to do when a gate fails, said to the user in place of the gate's technical message.
GATE_HELP = {
    "silent": "I could not hear any speech from you. Check that you are not muted (or that push-to-talk is held) "
    "and that Discord uses the microphone you speak into, then run /enroll again.",
    "quiet": "Your voice came through very quietly. Raise your input volume in Discord's Voice settings or move "
    "closer to the microphone, then run /enroll again.",
    "clipped": "Your voice came through distorted: it is too loud for the microphone. Lower your input volume in "
    "Discord's Voice settings or move back a little, then run /enroll again.",
    "too_little_speech": "Run /enroll again and read the whole text aloud at a normal pace, without long pauses "
    "(only the time you are actually speaking counts).",
    "several_voices": "I heard more than one voice on your microphone. Enrol when nobody else is talking near you "
    "(headphones stop the call itself from being picked up), then run /enroll again.",
}


def voiceprint_name(db: Database, user_id: str, display_name: str) -> str:
    """The name a Discord user's voiceprint is stored under: the one they already have (a
    re-enrolment replaces it), else their display name (it shows in labels such as "sounds
    like Ann"), made unique with their id when someone else's voiceprint has that name."""
    old = get_voiceprint_by_user(db, user_id)
    if old is not None:
        return old.name
    clean = plain(display_name.replace("=", "-"), 80) or user_id
    taken = get_voiceprint(db, clean)
    return clean if taken is None or taken.user_id == user_id else f"{clean} ({user_id})"


def store_enrolment(
    db: Database, user_id: str, display_name: str, result: EnrollmentResult
) -> tuple[VoiceprintData, bool]:
    """Save the voiceprint; returns it and whether it replaced an earlier one."""
    replaced = get_voiceprint_by_user(db, user_id) is not None
    vp = result.voiceprint(voiceprint_name(db, user_id, display_name), user_id)
    save_voiceprint(db, vp)
    return vp, replaced


def progress_text(seconds: float, needed: float, left: float) -> str:
    filled = min(10, int(10 * seconds / needed)) if needed > 0 else 10
    return (
        f"**Enrolling your voice.** Read this aloud at a normal pace, as if talking to the call:\n> {PROMPT}\n\n"
        f"Heard so far: **{min(seconds, needed):.1f} of {needed:g} s** of your speech "
        f"{FULL * filled}{EMPTY * (10 - filled)} ({max(0, round(left))} s left)"
    )


def failure_text(exc: EnrollmentError, *, timed_out: bool, seconds: float, needed: float) -> str:
    head = "Time is up. " if timed_out else ""
    if exc.gate == "too_little_speech":
        head += f"I heard {seconds:.1f} s of your speech; enrolment needs {needed:g} s. "
    elif exc.gate == "silent" and seconds == 0:
        head += "I did not hear you speak. "
    return f"{head}{GATE_HELP.get(exc.gate, str(exc))}\nNothing was stored. (Details: {exc.what}.)"


class EnrollCog(commands.Cog):
    voiceprint = app_commands.Group(name="voiceprint", description="Your voiceprint: see it or delete it")

    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot
        self.enrolling: set[int] = set()  # users whose /enroll is listening

    # -- /enroll ---------------------------------------------------------------------------

    def _session_for(self, interaction: discord.Interaction) -> LiveSession:
        guild, user = guild_member(
            interaction, "Use /enroll in a server, while you are in the call S-Talk is transcribing."
        )
        session = self.bot.sessions.get(guild.id)
        if session is None:
            raise CommandRefused(
                "S-Talk is not in a call in this server. Start one with /join, then use /enroll while you are in it."
            )
        if user.voice is None or user.voice.channel is None or user.voice.channel.id != session.channel.id:
            raise CommandRefused(
                f"Join {session.channel.mention} first: /enroll records your voice in the call S-Talk is transcribing."
            )
        if not session.is_processed(user.id):
            if user.id in session.presence.forgotten:
                raise CommandRefused(
                    "You used /forget, so S-Talk does not listen to you for the rest of this session. "
                    "Use /enroll in a later session if you want a voiceprint."
                )
            if user.id in session.presence.consents.opted_out:
                raise CommandRefused(
                    "You opted out, so S-Talk does not hear your voice in this server. Use /optin "
                    "first if you want to enrol."
                )
            raise CommandRefused("This server only processes people who used /optin. Use /optin first, then /enroll.")
        if user.id in self.enrolling:
            raise CommandRefused("Your enrolment is already listening: keep reading the text aloud.")
        return session

    @app_commands.command(name="enroll", description="Record your voice in this call to make your voiceprint")
    @app_commands.guild_only()
    async def enroll(self, interaction: discord.Interaction) -> None:
        session = self._session_for(interaction)
        user = interaction.user
        self.enrolling.add(user.id)
        try:
            s = self.bot.config.speaker
            await interaction.response.send_message(
                progress_text(0.0, s.min_enroll_speech_s, s.enroll_timeout_s), ephemeral=True
            )
            text = await self._enroll(interaction, session)
        except StalkError as exc:  # the speaker model, the database
            log.warning("enrolment of %s failed: %s", user.id, exc)
            text = f"Enrolment is not possible right now: {exc}. Nothing was stored."
        finally:
            self.enrolling.discard(user.id)
        await self._show(interaction, text)

    async def _show(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await interaction.edit_original_response(content=text)
        except discord.HTTPException as exc:
            log.warning("could not update the /enroll reply of %s: %s", interaction.user.id, exc)

    async def _enroll(self, interaction: discord.Interaction, session: LiveSession) -> str:
        s = self.bot.config.speaker
        user = interaction.user
        model = await self.bot.sessions.speaker_model.get()
        loop = asyncio.get_running_loop()
        enough = asyncio.Event()

        def on_progress(seconds: float, needed: float) -> None:  # a pipeline thread
            if seconds >= needed:
                loop.call_soon_threadsafe(enough.set)

        # The pipeline's VAD model (one session serves many streams): no second load per /enroll.
        listener = LiveEnrollment(
            model, str(user.id), needed=s.min_enroll_speech_s, vad=session.pipeline.vad, on_progress=on_progress
        )
        deadline = loop.time() + s.enroll_timeout_s
        shown = 0.0
        session.pipeline.add_listener(listener)
        try:
            while not enough.is_set() and (left := deadline - loop.time()) > 0:
                gone = self._gone(session, user.id)
                if gone:
                    return f"Enrolment stopped: {gone}. Nothing was stored."
                try:
                    await asyncio.wait_for(enough.wait(), min(PROGRESS_EVERY, left))
                except TimeoutError:
                    pass
                heard = listener.speech_seconds
                if heard != shown and not enough.is_set():
                    shown = heard
                    await self._show(interaction, progress_text(heard, s.min_enroll_speech_s, deadline - loop.time()))
        finally:
            session.pipeline.remove_listener(listener)
        try:
            result = await asyncio.to_thread(listener.finish)
        except EnrollmentError as exc:
            return failure_text(
                exc, timed_out=not enough.is_set(), seconds=listener.speech_seconds, needed=s.min_enroll_speech_s
            )
        name = user.display_name
        vp, replaced = await asyncio.to_thread(store_enrolment, self.bot.db, str(user.id), name, result)
        self.bot.sessions.voiceprint_added(vp, model, enrolled_in=session)
        log.info(
            "user %s enrolled in guild %s (%.1f s of speech, model %s)",
            user.id,
            session.guild.id,
            result.speech_seconds,
            model.info.name,
        )
        return (
            f"**{'Re-enrolled' if replaced else 'Enrolled'}.** Your voiceprint is stored "
            f"({result.speech_seconds:.1f} s of your speech{', it replaced your old one' if replaced else ''}). "
            "From now on S-Talk checks that speech from your account sounds like you, and marks lines that do "
            'not ("not their voice") in transcripts. `/voiceprint status` shows it; `/voiceprint delete` '
            "removes it."
        )

    def _gone(self, session: LiveSession, user_id: int) -> str | None:
        if session.state is not SessionState.RUNNING:
            return "the session ended"
        if user_id not in session.present():
            return "you left the call"
        if not session.is_processed(user_id):
            return "S-Talk no longer processes your voice here"
        return None

    # -- /voiceprint -----------------------------------------------------------------------

    @voiceprint.command(name="status", description="Whether you have a voiceprint, and what it was made from")
    async def status(self, interaction: discord.Interaction) -> None:
        vp = await asyncio.to_thread(get_voiceprint_by_user, self.bot.db, str(interaction.user.id))
        if vp is None:
            await interaction.response.send_message(
                "You have no voiceprint. Use /enroll while S-Talk is transcribing a call you are in.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            model = await self.bot.sessions.speaker_model.get()
            if model.model_id == vp.model_id:
                fit = "It matches the speaker model in use, so your speech in calls is checked against it."
            else:
                fit = (
                    f"It was made with another speaker model than the one in use now ({model.info.name}), so it "
                    "is not used: run /enroll again to be checked in calls."
                )
        except StalkError as exc:
            fit = f"The speaker model in use could not be loaded to compare ({exc.what})."
        when = vp.created_at.strftime("%Y-%m-%d %H:%M UTC") if vp.created_at else "?"
        updated = vp.updated_at.strftime("%Y-%m-%d %H:%M UTC") if vp.updated_at else when
        await interaction.followup.send(
            f'**Your voiceprint** (labelled "{for_discord(vp.name, 100)}"): enrolled {when}'
            f"{f', last renewed {updated}' if updated != when else ''}, from {vp.speech_seconds:.1f} s of speech, "
            f"speaker model {vp.model_name} ({vp.model_id[:12]}). {fit}\n"
            "It is a list of numbers describing your voice; no audio is kept. `/voiceprint delete` removes it.",
            ephemeral=True,
        )

    @voiceprint.command(name="delete", description="Delete your voiceprint")
    async def delete_command(self, interaction: discord.Interaction) -> None:
        vp = await asyncio.to_thread(get_voiceprint_by_user, self.bot.db, str(interaction.user.id))
        if vp is None:
            await interaction.response.send_message(
                "You have no voiceprint; there is nothing to delete.", ephemeral=True
            )
            return
        await interaction.response.send_message(
            "This deletes your voiceprint: S-Talk will stop checking that speech from your account is your voice. "
            "Your transcripts are kept. It cannot be undone (but /enroll makes a new one).",
            view=ConfirmView(
                interaction.user.id,
                self._delete_confirmed,
                label="Delete my voiceprint",
                prefix="voiceprint",
                confirm_id="delete",
                cancel_id="keep",
                timeout=CONFIRM_TIMEOUT,
                defer=False,
            ),
            ephemeral=True,
        )

    async def _delete_confirmed(self, interaction: discord.Interaction) -> str:
        names = await self.bot.sessions.delete_voiceprints(interaction.user.id)
        if not names:
            return "You had no voiceprint; nothing was deleted."
        return (
            "Your voiceprint is deleted. S-Talk no longer checks whose voice speaks from your account; "
            "/enroll makes a new one."
        )


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(EnrollCog(bot))
