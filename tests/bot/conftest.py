"""The real bot (StalkBot, its cogs, discord.py's app-command tree) logged in against a local
stand-in for Discord's REST API, with a guild built from gateway payloads and, for calls, the
voice-server double of tests/voice (real handshake, UDP, DAVE) behind the main-gateway stand-in.

Slash commands arrive the way the gateway delivers them: an INTERACTION_CREATE payload handed to
discord.py's own parser, which builds the Interaction and runs the command through the tree.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bot.config import load_config  # noqa: E402
from storage.db import open_database  # noqa: E402
from tests.bot.discord_rest import DiscordRest, Request, snowflake  # noqa: E402
from tests.calls import models_env  # noqa: E402
from tests.voice.double import MainGatewayStandIn, TlsPair, VoiceRoute, VoiceServerDouble, make_tls_pair  # noqa: E402

EVERYONE_PERMS = (1 << 10) | (1 << 11) | (1 << 20) | (1 << 21) | (1 << 31)  # view, send, connect, speak, use commands
ADMINISTRATOR = 1 << 3


def _user(uid: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(uid),
        "username": name,
        "global_name": name.capitalize(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


@dataclass
class Harness:
    bot: Any  # StalkBot
    rest: DiscordRest
    db: Any
    guild: Any
    voice: Any  # discord.VoiceChannel
    text: Any  # discord.TextChannel
    users: dict[str, int]
    user_payloads: dict[str, dict[str, Any]]
    roles: dict[str, list[str]]
    admin_role: int
    manager_role: int
    gateway: MainGatewayStandIn | None = None
    server: VoiceServerDouble | None = None
    _command_ids: dict[str, str] = field(default_factory=dict)
    add_guild: Any = None  # async (voice=True, in_voice=...) -> Harness: another guild of the same bot
    extra_servers: list[Any] = field(default_factory=list)

    def member_payload(self, name: str) -> dict[str, Any]:
        return {
            "user": self.user_payloads[name],
            "roles": self.roles[name],
            "joined_at": "2025-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(EVERYONE_PERMS),
        }

    def _interaction(self, name: str, kind: int, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": str(snowflake()),
            "application_id": str(self.rest.application_id),
            "type": kind,
            "token": f"tok{snowflake()}",
            "version": 1,
            "guild_id": str(self.guild.id),
            "channel": {"id": str(self.text.id), "type": 0},
            "channel_id": str(self.text.id),
            "member": self.member_payload(name),
            "data": data,
            "app_permissions": str(EVERYONE_PERMS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
            "attachment_size_limit": 10_485_760,
            **extra,
        }

    async def command(self, user: str, name: str, sub: str | None = None, **options: Any) -> list[Request]:
        """Run /name [sub] as ``user``; returns the requests the bot made for this interaction
        (its response, and the followup when it deferred)."""
        opts = [{"name": k, "type": _option_type(v), "value": _option_value(v)} for k, v in options.items()]
        data: dict[str, Any] = {"id": self._command_ids.get(name, str(snowflake())), "name": name, "type": 1}
        if sub is not None:
            data["options"] = [{"name": sub, "type": 1, "options": opts}]
        elif opts:
            data["options"] = opts
        resolved = _resolved(self, options)
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction(user, 2, data)
        return await self._dispatch(payload)

    async def click(self, user: str, message_id: str, custom_id: str) -> list[Request]:
        message = self.rest._message(str(self.text.id), {"content": ""}, int(message_id))
        payload = self._interaction(user, 3, {"custom_id": custom_id, "component_type": 2}, message=message)
        return await self._dispatch(payload)

    async def _dispatch(self, payload: dict[str, Any]) -> list[Request]:
        token = payload["token"]
        self.bot._connection.parse_interaction_create(payload)

        def answered(reqs: list[Request]) -> bool:
            mine = [r for r in reqs if f"/{token}" in r.path]
            callbacks = [r for r in mine if r.path.endswith("/callback")]
            if not callbacks:
                return False
            if callbacks[0].body["type"] in (5, 6):  # deferred: the answer is a followup or an edit
                return any(r.path.startswith("/webhooks/") for r in mine)
            return True

        await self.rest.wait_for(answered, timeout=120)
        return self.rest.for_interaction(token)

    def voice_state(self, user: str, channel_id: int | None) -> None:
        """The gateway says ``user`` joined (or, with None, left) a voice channel."""
        self.bot._connection.parse_voice_state_update(
            {
                "guild_id": str(self.guild.id),
                "channel_id": None if channel_id is None else str(channel_id),
                "user_id": str(self.users[user]),
                "member": self.member_payload(user),
                "session_id": f"s-{user}",
                "deaf": False,
                "mute": False,
                "self_deaf": False,
                "self_mute": False,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            }
        )


def _option_type(v: Any) -> int:
    if isinstance(v, bool):
        return 5
    if isinstance(v, RoleRef):
        return 8
    if isinstance(v, ChannelRef):
        return 7
    return 3


def _option_value(v: Any) -> Any:
    return str(v.id) if isinstance(v, (RoleRef, ChannelRef)) else v


@dataclass(frozen=True)
class RoleRef:
    id: int


@dataclass(frozen=True)
class ChannelRef:
    id: int


def _resolved(h: Harness, options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in options.values():
        if isinstance(v, RoleRef):
            out.setdefault("roles", {})[str(v.id)] = {
                "id": str(v.id),
                "name": "r",
                "color": 0,
                "hoist": False,
                "position": 1,
                "permissions": "0",
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        if isinstance(v, ChannelRef):
            out.setdefault("channels", {})[str(v.id)] = {
                "id": str(v.id),
                "type": 0,
                "name": "notes",
                "permissions": str(EVERYONE_PERMS),
            }
    return out


class _Gateway(MainGatewayStandIn):
    """The voice tests' main-gateway stand-in, plus what Client.close() reads of a websocket."""

    open = True


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture(scope="session")
def tls() -> TlsPair:
    return make_tls_pair()


class _Gateways:
    """The main gateway for several guilds: each guild's voice joins go to its own stand-in
    (and so to its own voice double)."""

    open = True
    latency = 0.0

    def __init__(self) -> None:
        self.by_guild: dict[int, _Gateway] = {}

    async def voice_state(
        self, guild_id: int, channel_id: int | None, self_mute: bool = False, self_deaf: bool = False
    ) -> None:
        await self.by_guild[int(guild_id)].voice_state(guild_id, channel_id, self_mute, self_deaf)

    async def close(self, code: int = 1000) -> None:
        return None

    def is_ratelimited(self) -> bool:
        return False


async def _add_guild(h_bot, rest: DiscordRest, db, tls: TlsPair, *, voice: bool, in_voice: tuple[str, ...]) -> Harness:
    guild_id, voice_id, text_id = (snowflake() for _ in range(3))
    admin_role, manager_role = snowflake(), snowflake()
    names = ("ann", "ben", "cat", "dan")
    users = {n: snowflake() for n in names}
    payloads = {n: _user(uid, n) for n, uid in users.items()}
    roles = {"ann": [str(admin_role)], "ben": [], "cat": [str(manager_role)], "dan": []}
    state = h_bot._connection
    guild = state._add_guild_from_data(
        {
            "id": str(guild_id),
            "name": f"guild {guild_id % 1000}",
            "owner_id": str(snowflake()),
            "features": [],
            "emojis": [],
            "member_count": 5,
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": str(EVERYONE_PERMS),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(admin_role),
                    "name": "admins",
                    "permissions": str(ADMINISTRATOR),
                    "position": 2,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(manager_role),
                    "name": "s-talk managers",
                    "permissions": "0",
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
            ],
            "members": [
                {
                    "user": rest.bot_user,
                    "roles": [],
                    "joined_at": "2025-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ]
            + [
                {
                    "user": payloads[n],
                    "roles": roles[n],
                    "joined_at": "2025-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
                for n in names
            ],
            "channels": [
                {
                    "id": str(voice_id),
                    "type": 2,
                    "name": "call",
                    "position": 0,
                    "bitrate": 64000,
                    "user_limit": 0,
                    "permission_overwrites": [],
                },
                {"id": str(text_id), "type": 0, "name": "general", "position": 1, "permission_overwrites": []},
            ],
            "voice_states": [
                {
                    "user_id": str(users[n]),
                    "channel_id": str(voice_id),
                    "session_id": f"s-{n}",
                    "deaf": False,
                    "mute": False,
                    "self_deaf": False,
                    "self_mute": False,
                    "self_video": False,
                    "suppress": False,
                    "request_to_speak_timestamp": None,
                }
                for n in in_voice
            ],
        }
    )
    h = Harness(
        bot=h_bot,
        rest=rest,
        db=db,
        guild=guild,
        voice=guild.get_channel(voice_id),
        text=guild.get_channel(text_id),
        users=users,
        user_payloads=payloads,
        roles=roles,
        admin_role=admin_role,
        manager_role=manager_role,
    )
    if voice:
        server = VoiceServerDouble(tls, guild_id=guild_id, channel_id=voice_id, token="voice-token", dave=True)
        await server.start()
        for i, n in enumerate(in_voice):
            await server.add_member(users[n], via_client_connect=bool(i % 2))
        h.server = server
        h.gateway = _Gateway(
            state=state,
            guild_id=guild_id,
            user_id=int(rest.bot_user["id"]),
            route=VoiceRoute(server.endpoint, "voice-token"),
        )
        if not isinstance(h_bot.ws, _Gateways):
            h_bot.ws = _Gateways()
        h_bot.ws.by_guild[guild_id] = h.gateway
    return h


@pytest.fixture
async def make_bot(tls: TlsPair, tiny_en, tmp_path) -> AsyncIterator[HarnessFactory]:
    """Build and log in the bot with one guild. ``in_voice`` users sit in the voice channel
    (and, with ``voice=True``, in the voice double, where they can speak); ``env`` overrides
    config keys. ``harness.add_guild(...)`` adds another guild to the same bot."""
    from bot.discordbot.app import build_bot

    made: list[Harness] = []

    async def factory(
        *,
        voice: bool = False,
        in_voice: tuple[str, ...] = ("ann", "ben"),
        env: dict[str, str] | None = None,
        db_path: Path | None = None,
    ) -> Harness:
        bot_id, app_id = snowflake(), snowflake()
        rest = DiscordRest(bot_user=_user(bot_id, "s-talk", bot=True), application_id=app_id)
        await rest.start()
        config = load_config(None, env={**models_env(), "STALK_DISCORD_TRANSCRIPT_INTERVAL": "1", **(env or {})})
        db = open_database(str(db_path or tmp_path / f"bot-{len(made)}.db"))
        # As `python -m bot run` builds it: [discord] shards chooses the client class.
        bot = build_bot(config, db, transcriber=tiny_en, connector=aiohttp.TCPConnector(ssl=tls.client, limit=0))
        await bot.login("test-bot-token")  # REST login, application info, setup_hook (cogs, sync)
        h = await _add_guild(bot, rest, db, tls, voice=voice, in_voice=in_voice)
        made.append(h)

        async def add_guild(*, voice: bool = True, in_voice: tuple[str, ...] = ("ann", "ben")) -> Harness:
            other = await _add_guild(bot, rest, db, tls, voice=voice, in_voice=in_voice)
            other.add_guild = add_guild
            extra_servers.append(other.server)
            return other

        extra_servers: list[VoiceServerDouble | None] = []
        h.add_guild = add_guild
        h.extra_servers = extra_servers
        return h

    try:
        yield factory
    finally:
        for h in made:
            try:
                await asyncio.wait_for(h.bot.close(), 60)
            finally:
                for server in [h.server, *h.extra_servers]:
                    if server is not None:
                        await server.stop()
                        assert not server.errors, f"voice double failed: {server.errors!r}"
                await h.rest.stop()
                h.db.close()
