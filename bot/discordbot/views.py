"""Views (buttons, menus) that belong to the person who asked for them."""

from __future__ import annotations

import discord


class OwnerOnlyView(discord.ui.View):
    """A view only the person who asked may use: ephemeral replies can still be forwarded or
    seen over a shoulder, and a confirmation (delete, forget) must come from its owner."""

    def __init__(self, owner_id: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("Only the person who asked can use these buttons.", ephemeral=True)
            return False
        return True
