"""Small helpers every cog and Discord-facing module shares: written once, here.

* ``escape``: text others chose (names, transcripts, titles) as it must appear in a message:
  shown as typed, restyling, linking and mentioning nothing (``storage.plaintext.for_discord``).
* ``call_clock``: a call time as the live transcript and ``/log`` show it (``MM:SS``, ``H:MM:SS``).
* ``chunk``: lines packed into messages within Discord's 2000-character limit.
* ``OwnerOnlyView`` and ``ConfirmView``: buttons only their owner may press; the one
  "do it / cancel" confirmation (deleting a call, a voiceprint, everything about you).
* ``CommandRefused`` and ``guild_member``: the guild guard. Server-only commands carry
  ``app_commands.guild_only()`` (Discord hides them in DMs); ``guild_member`` is the check
  inside, narrowing the interaction to its guild and member or refusing with one clear line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from storage.plaintext import for_discord

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord's limit on a message's content, in characters


class CommandRefused(app_commands.AppCommandError):
    """A command that cannot be done as asked; the message is said to the user as is."""


def escape(text: object, limit: int | None = None) -> str:
    """A name or text others chose, as it must appear in a message (``storage.plaintext.for_discord``)."""
    return for_discord(text, limit)


def call_clock(seconds: float) -> str:
    """Call time to the second: ``MM:SS``, or ``H:MM:SS`` past the hour."""
    minutes, sec = divmod(int(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


def chunk(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join lines into as few messages as possible, each at most ``limit`` characters; a line
    longer than that is cut into pieces."""
    messages: list[str] = []
    current = ""
    for line in lines:
        while len(line) > limit:
            if current:
                messages.append(current)
                current = ""
            messages.append(line[:limit])
            line = line[limit:]
        if not current:
            current = line
        elif len(current) + 1 + len(line) <= limit:
            current += "\n" + line
        else:
            messages.append(current)
            current = line
    if current:
        messages.append(current)
    return messages


def guild_member(interaction: discord.Interaction, refusal: str) -> tuple[discord.Guild, discord.Member]:
    """The guild and member of a server-only command, or ``CommandRefused(refusal)``."""
    if interaction.guild is None or not isinstance(interaction.user, discord.Member):
        raise CommandRefused(refusal)
    return interaction.guild, interaction.user


class OwnerOnlyView(discord.ui.View):
    """A view only the person who asked may use: ephemeral replies can still be forwarded or
    seen over a shoulder, and a confirmation (delete, forget) must come from its owner.

    Its buttons are disabled when it expires (once ``message_of``, the interaction whose
    original response holds it, is set), and a failing button is answered like a failing
    command (the client's ``on_app_command_error``)."""

    def __init__(self, owner_id: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.message_of: discord.Interaction | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("Only the person who asked can use these buttons.", ephemeral=True)
            return False
        return True

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, (discord.ui.Button, discord.ui.Select)):
                item.disabled = True
        if self.message_of is not None:
            try:
                await self.message_of.edit_original_response(view=self)
            except discord.HTTPException as exc:
                log.info("could not disable the buttons of an expired message: %s", exc)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        handler = getattr(interaction.client, "on_app_command_error", None)
        if handler is not None:
            await handler(interaction, error)
        else:
            await super().on_error(interaction, error, item)


Confirmed = Callable[[discord.Interaction], Awaitable[str]]


class ConfirmView(OwnerOnlyView):
    """A danger button and a Cancel button. Confirming answers Discord at once (the work may
    take longer than its 3 s; ``defer=False`` for quick work), runs ``on_confirm`` and shows the text it returns in place of
    the question; cancelling says nothing was done. ``prefix`` names the buttons'
    ``custom_id``s: ``{prefix}:{confirm_id}`` and ``{prefix}:{cancel_id}``."""

    def __init__(
        self,
        owner_id: int,
        on_confirm: Confirmed,
        *,
        label: str,
        prefix: str,
        confirm_id: str = "yes",
        cancel_id: str = "no",
        timeout: float = 60.0,
        cancelled: str = "Nothing was deleted.",
        defer: bool = True,
    ) -> None:
        super().__init__(owner_id, timeout)
        self.on_confirm = on_confirm
        self.cancelled = cancelled
        self.defer = defer  # False: quick work, the answer replaces the question in one response
        yes: discord.ui.Button[ConfirmView] = discord.ui.Button(
            label=label, style=discord.ButtonStyle.danger, custom_id=f"{prefix}:{confirm_id}"
        )
        no: discord.ui.Button[ConfirmView] = discord.ui.Button(
            label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"{prefix}:{cancel_id}"
        )
        yes.callback = self._confirm  # type: ignore[method-assign]
        no.callback = self._cancel  # type: ignore[method-assign]
        self.add_item(yes)
        self.add_item(no)

    async def _confirm(self, interaction: discord.Interaction) -> None:
        self.stop()
        if not self.defer:
            await interaction.response.edit_message(content=await self.on_confirm(interaction), view=None)
            return
        await interaction.response.defer()
        text = await self.on_confirm(interaction)
        await interaction.edit_original_response(content=text, embed=None, view=None)

    async def _cancel(self, interaction: discord.Interaction) -> None:
        self.stop()
        await interaction.response.edit_message(content=self.cancelled, view=None)
