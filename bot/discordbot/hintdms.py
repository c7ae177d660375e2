"""Hint DMs in live sessions: a HintEngine per session, delivering by direct message.

``attach_hints(manager, messenger)`` registers a listener factory on the SessionManager: each
new session gets a ``HintEngine`` on the session's wall clock and recorder, whose recipients
are the participants present, processed in the guild (consent) and opted in with
``/hints on``, and whose delivery is ``DmDelivery`` (one DM per recipient, closed DMs logged
once per user per session). The session closes the engine when it ends.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from bot.discordbot.dm import DirectMessenger
from bot.discordbot.kit import MESSAGE_LIMIT
from bot.hints import Hint, HintEngine, Recipient, RecipientResult
from bot.hints.engine import default_language
from storage.plaintext import for_discord
from storage.settings import hint_recipients

if TYPE_CHECKING:
    from bot.discordbot.sessions import LiveSession, SessionManager

log = logging.getLogger(__name__)

DM_LIMIT = MESSAGE_LIMIT


def hint_text(hint: Hint, *, guild: str, channel: str) -> str:
    """The DM: where it is from, the suggestions as a short list, and how to stop them.

    Names and suggestions go through ``storage.plaintext.for_discord`` like every text others chose
    (the suggestions were checked already; this is the one rule for what reaches Discord)."""
    where = f"**{for_discord(channel, 100)}** in {for_discord(guild, 100)}"
    head = f"Your call in {where} has gone quiet. A few things you could bring up:"
    foot = "-# Only you see this. `/hints off` stops these messages."
    lines: list[str] = []
    room = DM_LIMIT - len(head) - len(foot) - 4
    for text in hint.texts:
        line = f"- {for_discord(text, DM_LIMIT)}"  # bounded by [hints] max_chars already
        if len(line) + 1 > room:
            break
        lines.append(line)
        room -= len(line) + 1
    return "\n".join([head, *lines, "", foot])


class DmDelivery:
    """``HintDelivery`` by Discord DM, called from the engine's worker thread."""

    def __init__(self, messenger: DirectMessenger, *, guild: str, channel: str) -> None:
        self.messenger = messenger
        self.guild = guild
        self.channel = channel
        self._warned: set[str] = set()  # users whose failure was logged in this session
        self._lock = threading.Lock()

    def deliver(self, hint: Hint) -> list[RecipientResult]:
        text = hint_text(hint, guild=self.guild, channel=self.channel)
        results = []
        for r in hint.recipients:
            try:
                error = self.messenger.deliver(int(r.user_id or r.key), text)
            except Exception as exc:  # one recipient's trouble must not stop the others
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                with self._lock:
                    first = r.key not in self._warned
                    self._warned.add(r.key)
                # A user with closed DMs stays closed: say so once, not at every lull.
                (log.warning if first else log.debug)("hint DM to %s (%s) not sent: %s", r.name, r.key, error)
            results.append(RecipientResult(r, error is None, error))
        return results


def recipients_for(session: LiveSession, engine: HintEngine, db) -> list[Recipient]:
    """Those present (in the pipeline and the voice channel), processed in this call (the
    session's one rule: consent, not a bot, not forgotten), and opted in to hints.

    Runs on the engine's thread: it reads the presence snapshot the event loop published, never
    discord.py's member cache."""
    presence = session.presence  # one read: every check below sees the same moment
    candidates = {}
    for r in engine.present():
        try:
            uid = int(r.user_id or r.key)
        except ValueError:
            continue
        if uid in presence.humans and presence.is_processed(uid):
            candidates[uid] = r
    wanted = hint_recipients(db, set(candidates))
    return [r for uid, r in candidates.items() if uid in wanted]


def attach_hints(manager: SessionManager, messenger: DirectMessenger) -> None:
    """Give every session the manager starts from now on a hint engine (when hints are on)."""

    def factory(session: LiveSession) -> HintEngine | None:
        config = manager.config
        if not config.hints.enabled:
            return None
        delivery = DmDelivery(messenger, guild=session.guild.name, channel=session.channel.name)
        engine = HintEngine(
            config,
            session.pipeline.clock,
            delivery,
            recorder=session.pipeline.recorder,
            session_id=session.session_id,
            default_language=default_language(config.asr.language),
        )
        engine.recipients = lambda: recipients_for(session, engine, manager.db)
        return engine

    manager.listener_factories.append(factory)
