"""Who may start, stop and configure the bot in a guild.

Administrators always may. When the guild set a manager role, only its holders (and
administrators) may start, stop or configure. With no role set, anyone in the voice channel
may start and stop a session, and configuring needs the Manage Server permission.
"""

from __future__ import annotations

import discord

from storage.settings import GuildSettingsInfo


def _has_role(member: discord.Member, role_id: int | None) -> bool:
    return role_id is not None and any(r.id == role_id for r in member.roles)


def may_run_sessions(member: discord.Member, settings: GuildSettingsInfo) -> bool:
    if member.guild_permissions.administrator:
        return True
    if settings.manager_role_id is None:
        return True
    return _has_role(member, settings.manager_role_id)


def may_configure(member: discord.Member, settings: GuildSettingsInfo) -> bool:
    if member.guild_permissions.administrator:
        return True
    if settings.manager_role_id is None:
        return member.guild_permissions.manage_guild
    return _has_role(member, settings.manager_role_id)


def requirement(settings: GuildSettingsInfo, *, configure: bool) -> str:
    if settings.manager_role_id is not None:
        return f"the <@&{settings.manager_role_id}> role or Administrator"
    return "the Manage Server permission or Administrator" if configure else "Administrator"
