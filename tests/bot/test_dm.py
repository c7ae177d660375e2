"""Direct messages from a worker thread through the bot's event loop (the delivery path for hints)."""

from __future__ import annotations

import asyncio

from bot.discordbot.dm import DirectMessenger


async def test_dm_from_a_worker_thread(make_bot) -> None:
    h = await make_bot()
    messenger = DirectMessenger(h.bot)
    ben = h.users["ben"]
    ok = await asyncio.to_thread(messenger.send, ben, "Ask @everyone about *their* trip")
    assert ok and messenger.sent == 1
    (open_dm,) = h.rest.where("POST", "/users/@me/channels")
    assert open_dm.body == {"recipient_id": ben}
    (msg,) = [r for r in h.rest.where("POST", "/messages") if r.path.startswith("/channels/")]
    assert msg.content == "Ask @everyone about *their* trip" and msg.body["allowed_mentions"] == {"parse": []}


async def test_dm_refused_is_false_not_an_exception(make_bot) -> None:
    h = await make_bot()
    messenger = DirectMessenger(h.bot)
    h.rest.fail_paths["/users/@me/channels"] = 403  # the user does not accept DMs
    ok = await asyncio.to_thread(messenger.send, h.users["ben"], "hello")
    assert ok is False and messenger.failed == 1
