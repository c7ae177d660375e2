"""The end-of-call summary by DM, for the participants who said ``/summary on``.

Runs on the event loop after the session has closed (``SessionManager.ended_hooks``): the
database reads in a worker thread, the DMs through ``DirectMessenger.deliver_async`` (a closed
DM is skipped; the others still get theirs). The summary is the one stored as the call ended
(the extractive one at once; the model's replaces it later, and ``/log summary`` shows that).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.discordbot.dm import DirectMessenger
from bot.discordbot.kit import chunk, escape
from storage.db import Database
from storage.export import summary_points
from storage.queries import SessionDetail, get_session
from storage.settings import summary_dm_recipients

if TYPE_CHECKING:
    from bot.discordbot.sessions import LiveSession, SessionManager

log = logging.getLogger(__name__)


def summary_dm(detail: SessionDetail, guild: str, channel: str) -> list[str]:
    """The DM's messages (each at most 2000 characters): where the call was, its points."""
    assert detail.summary is not None

    def esc(text: str) -> str:
        return escape(text, 300)

    lines = [f"Your call in **{esc(channel)}** in {esc(guild)} (#{detail.id}) has ended. What it was about:"]
    for item in summary_points(detail, detail.summary, esc):
        lines.append(item if item.startswith("- ") else f"**{item[:-1]}**")
    lines.append(f"-# /log summary {detail.id} shows it with who talked how much. `/summary off` stops these messages.")
    return chunk(lines)


def _load(db: Database, session_id: int) -> tuple[SessionDetail | None, set[int]]:
    return get_session(db, session_id), summary_dm_recipients(db, session_id)


def attach_summary_dms(manager: SessionManager, messenger: DirectMessenger) -> None:
    async def hook(session: LiveSession) -> None:
        sid = session.session_id
        if sid is None or not manager.config.summary.at_end:
            return
        detail, users = await asyncio.to_thread(_load, manager.db, sid)
        if detail is None or detail.summary is None or not detail.summary.points or not users:
            return
        messages = summary_dm(detail, session.guild.name, session.channel.name)
        for user_id in sorted(users):
            for text in messages:
                failed = await messenger.deliver_async(user_id, text)
                if failed:
                    log.info("summary DM of session %s to user %s not sent: %s", sid, user_id, failed)
                    break

    manager.ended_hooks.append(hook)
