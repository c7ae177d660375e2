"""Direct messages sent from worker threads (the pipeline's), for private hints.

The hints issue's HintDelivery is called from a pipeline worker thread; phase 2 implements it
with ``DirectMessenger.send``, which hands the send to the bot's event loop and waits a bounded
time, so a slow Discord never stalls transcription for long and a failure never escapes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

import discord

log = logging.getLogger(__name__)

CLOSED_DMS = 50007  # Discord: cannot send messages to this user


class DirectMessenger:
    def __init__(self, client: discord.Client, *, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout
        self.sent = 0
        self.failed = 0

    async def deliver_async(self, user_id: int, text: str) -> str | None:
        """Send; None once Discord took it, else why not (logging is the caller's)."""
        try:
            # A DM channel needs only the id: no user lookup (and no members intent) involved.
            channel = await self.client.create_dm(discord.Object(id=user_id))
            await channel.send(text[:2000], allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            self.failed += 1
            # 50007: the user does not accept DMs from this server's members; nothing to retry.
            if exc.code == CLOSED_DMS:
                return "DMs closed"
            return f"HTTP {exc.status}: {exc.text or exc}"[:200]
        self.sent += 1
        return None

    def deliver(self, user_id: int, text: str) -> str | None:
        """Blocking, for worker threads (never the event loop's own): None once Discord took
        it, else why not. Waits at most ``timeout`` seconds."""
        future = asyncio.run_coroutine_threadsafe(self.deliver_async(user_id, text), self.client.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.failed += 1
            return f"not sent within {self.timeout:.0f} s"

    def send(self, user_id: int, text: str) -> bool:
        """Blocking, for worker threads (never the event loop's own): True once Discord took it."""
        error = self.deliver(user_id, text)
        if error is not None:
            log.warning("could not DM user %s: %s", user_id, error)
        return error is None
