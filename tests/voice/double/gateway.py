"""Stand-ins for Discord's REST API and main gateway, just enough to start real voice.

discord.py's voice handshake begins on the main gateway: ``channel.connect()`` sends an
opcode-4 voice state update there, and the gateway answers with VOICE_STATE_UPDATE and
VOICE_SERVER_UPDATE dispatches that carry the voice endpoint. Everything after that (the
voice websocket, UDP, encryption, DAVE) is discord.py's real code talking to the voice
double over the network.

The stand-in replaces only ``Client.ws`` (the object ``Guild.change_voice_state`` sends
opcode 4 through) and feeds its answers into discord.py's real dispatch parsers
(``ConnectionState.parse_voice_state_update`` / ``parse_voice_server_update``), exactly
where the real gateway's READY/GUILD_CREATE/VOICE_* handling puts them. The aiohttp session
discord.py opens the voice websocket with comes from ``HTTPClient.static_login`` against a
local REST stub, so the client's TLS trust is set the supported way: a connector whose ssl
context trusts the double's throwaway certificate.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
from aiohttp import web

from .tls import TlsPair

_ids = itertools.count(1)


def snowflake() -> int:
    # Plausible 2025 snowflakes; only uniqueness matters.
    return 1_300_000_000_000_000_000 + next(_ids) * 4096


@dataclass
class VoiceRoute:
    """Where VOICE_SERVER_UPDATE currently points; tests move it to simulate a server move."""

    endpoint: str
    token: str


@dataclass
class MainGatewayStandIn:
    """Receives discord.py's opcode-4 voice state updates and answers like the gateway."""

    state: Any  # discord.state.ConnectionState
    guild_id: int
    user_id: int
    route: VoiceRoute
    session_id: str = "double-session-1"
    sent: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0  # read by discord.py in places; keeps it a well-formed ws stand-in
    # The real gateway answers a round trip later. An instant answer is not just faster but
    # different: discord.py's leave flow relies on the voice websocket closing (1000) before
    # the VOICE_STATE_UPDATE that confirms the leave arrives.
    reply_delay: float = 0.05

    async def voice_state(
        self, guild_id: int, channel_id: int | None, self_mute: bool = False, self_deaf: bool = False
    ) -> None:
        self.sent.append(
            {"guild_id": guild_id, "channel_id": channel_id, "self_mute": self_mute, "self_deaf": self_deaf}
        )
        asyncio.get_running_loop().call_later(self.reply_delay, self._answer, channel_id, self_mute, self_deaf)

    def _answer(self, channel_id: int | None, self_mute: bool, self_deaf: bool) -> None:
        self.state.parse_voice_state_update(
            {
                "guild_id": str(self.guild_id),
                "channel_id": None if channel_id is None else str(channel_id),
                "user_id": str(self.user_id),
                "session_id": self.session_id,
                "deaf": False,
                "mute": False,
                "self_deaf": self_deaf,
                "self_mute": self_mute,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            }
        )
        if channel_id is not None:
            self.send_voice_server_update()

    def kick(self) -> None:
        """A moderator disconnects the bot: the gateway says it is in no channel any more
        (the voice server closes the websocket with 4014 alongside)."""
        self._answer(None, False, False)

    def member_voice_state(self, user_id: int, channel_id: int | None) -> None:
        """Someone else joins (or, with None, leaves) a voice channel: the VOICE_STATE_UPDATE
        the main gateway sends every member, so discord.py's cache knows who is in it."""
        self.state.parse_voice_state_update(
            {
                "guild_id": str(self.guild_id),
                "channel_id": None if channel_id is None else str(channel_id),
                "user_id": str(user_id),
                "session_id": f"session-{user_id}",
                "deaf": False,
                "mute": False,
                "self_deaf": False,
                "self_mute": False,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            }
        )

    def send_voice_server_update(self) -> None:
        self.state.parse_voice_server_update(
            {"token": self.route.token, "guild_id": str(self.guild_id), "endpoint": self.route.endpoint}
        )

    # discord.py calls these on its websocket during shutdown.
    async def close(self, code: int = 1000) -> None:
        return None

    def is_ratelimited(self) -> bool:
        return False


@dataclass
class FakeDiscord:
    client: discord.Client
    guild: discord.Guild
    channel: discord.VoiceChannel
    gateway: MainGatewayStandIn
    _rest: web.AppRunner

    async def close(self) -> None:
        for vc in list(self.client.voice_clients):
            try:
                await asyncio.wait_for(vc.disconnect(force=True), 5)
            except Exception:
                pass
        await self.client.http.close()
        await self._rest.cleanup()


async def _rest_stub(bot_user: dict[str, Any]) -> tuple[web.AppRunner, int]:
    async def me(request: web.Request) -> web.Response:
        # discord.py only parses JSON when Content-Type is exactly application/json.
        if request.headers.get("Authorization", "").startswith("Bot "):
            return web.Response(body=json.dumps(bot_user).encode(), content_type="application/json")
        body = json.dumps({"message": "401: Unauthorized", "code": 0}).encode()
        return web.Response(body=body, status=401, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def fake_discord(tls: TlsPair, route: VoiceRoute, *, guild_id: int, channel_id: int, bot_id: int) -> FakeDiscord:
    """A logged-in discord.Client whose guild holds one voice channel, wired to the stand-ins."""
    bot_user = {"id": str(bot_id), "username": "s-talk-test", "discriminator": "0", "avatar": None, "bot": True}
    rest, port = await _rest_stub(bot_user)
    # Route.BASE is the one knob discord.py has for its API origin.
    discord.http.Route.BASE = f"http://127.0.0.1:{port}/api/v10"

    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    client = discord.Client(intents=intents, connector=aiohttp.TCPConnector(ssl=tls.client, limit=0))
    await client._async_setup_hook()
    state = client._connection
    user_data = await client.http.static_login("double-bot-token")
    state.user = discord.ClientUser(state=state, data=user_data)

    guild_payload = {
        "id": str(guild_id),
        "name": "double guild",
        "owner_id": str(bot_id),
        "roles": [],
        "emojis": [],
        "features": [],
        "member_count": 1,
        "members": [
            {
                "user": bot_user,
                "roles": [],
                "joined_at": "2025-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        ],
        "channels": [
            {
                "id": str(channel_id),
                "type": 2,
                "name": "call",
                "position": 0,
                "bitrate": 64000,
                "user_limit": 0,
                "permission_overwrites": [],
            }
        ],
        "voice_states": [],
    }
    guild = state._add_guild_from_data(guild_payload)
    channel = guild.get_channel(channel_id)
    assert isinstance(channel, discord.VoiceChannel)
    gateway = MainGatewayStandIn(state=state, guild_id=guild_id, user_id=bot_id, route=route)
    client.ws = gateway  # type: ignore[assignment]
    return FakeDiscord(client=client, guild=guild, channel=channel, gateway=gateway, _rest=rest)


def restore_api_base() -> None:
    discord.http.Route.BASE = "https://discord.com/api/v10"
