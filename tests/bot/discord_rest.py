"""A local stand-in for the parts of Discord's REST API the bot uses, reached by pointing
discord.py's ``Route.BASE`` at it (the one knob discord.py has for its API origin; webhooks and
interaction callbacks go through the same Route class).

It answers like Discord with well-formed payloads built from what was sent, and records every
request so tests can judge what the bot said and how (ephemeral flags, allowed_mentions).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.gateway
import yarl
from aiohttp import web

from tests.voice.double import snowflake  # one id sequence for every stand-in; re-exported to the bot tests


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: dict[str, bytes] = field(default_factory=dict)  # attachments of a multipart request, by filename

    @property
    def content(self) -> str | None:
        return (self.body or {}).get("content") if isinstance(self.body, dict) else None

    @property
    def ephemeral(self) -> bool:
        data = self.body.get("data", self.body) if isinstance(self.body, dict) else {}
        return bool((data or {}).get("flags", 0) & 64)

    @property
    def message_data(self) -> dict[str, Any]:
        """The message part: interaction callbacks wrap it in ``data``."""
        if not isinstance(self.body, dict):
            return {}
        return self.body.get("data") or {} if "type" in self.body and "/callback" in self.path else self.body


@dataclass
class DiscordRest:
    bot_user: dict[str, Any]
    application_id: int
    requests: list[Request] = field(default_factory=list)
    fail_paths: dict[str, int] = field(default_factory=dict)  # path fragment -> HTTP status to answer
    closed_dms: set[int] = field(default_factory=set)  # users who accept no DMs: 403, code 50007
    dm_channels: dict[str, int] = field(default_factory=dict)  # DM channel id -> its user
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    last_callback_message_id: dict[str, str] = field(default_factory=dict)  # callback path -> message id
    runner: web.AppRunner | None = None
    port: int = 0

    def _message(self, channel_id: str, body: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        return {
            "id": str(message_id or snowflake()),
            "channel_id": str(channel_id),
            "author": self.bot_user,
            "content": body.get("content") or "",
            "timestamp": "2026-11-21T12:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags", 0),
            "components": body.get("components", []),
        }

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """A main gateway that accepts and says nothing: the client stays connecting (until
        its 60 s HELLO timeout), which is all the shutdown tests need of it."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with self._changed:
            self.requests.append(Request("GET", "/gateway-ws", dict(request.query), None))
            self._changed.notify_all()
        async for _ in ws:
            pass
        return ws

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v10")
        body: Any = None
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            # A message with attachments: the JSON is the payload_json part, each file a part of its own.
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(data)
                else:
                    files[part.filename or part.name or "?"] = bytes(data)  # type: ignore[union-attr]
        elif request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        rec = Request(request.method, path, dict(request.query), body, files)
        async with self._changed:
            self.requests.append(rec)
            self._changed.notify_all()
        for fragment, status in self.fail_paths.items():
            if fragment in path:
                return self._json({"message": "denied by the test", "code": 50013}, status)
        if not request.headers.get("Authorization", "").startswith("Bot ") and not path.startswith(
            ("/interactions/", "/webhooks/")
        ):
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        return self._json(*self._answer(rec))

    def _answer(self, r: Request) -> tuple[Any, int]:
        parts = r.path.strip("/").split("/")
        if r.path == "/users/@me":
            return self.bot_user, 200
        if r.path == "/oauth2/applications/@me":
            return {
                "id": str(self.application_id),
                "name": "S-Talk test",
                "icon": None,
                "description": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.bot_user,
                "summary": "",
                "verify_key": "00",
                "flags": 0,
            }, 200
        if parts[0] == "applications" and parts[-1] == "commands" and r.method == "PUT":
            return [
                dict(
                    c,
                    id=str(snowflake()),
                    application_id=str(self.application_id),
                    version="1",
                    default_member_permissions=c.get("default_member_permissions"),
                )
                for c in r.body
            ], 200
        if parts[0] == "interactions" and parts[-1] == "callback":
            kind = r.body["type"]
            interaction = {
                "id": parts[1],
                "type": 2,
                "response_message_id": None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(((r.body.get("data") or {}).get("flags", 0)) & 64),
            }
            out: dict[str, Any] = {"interaction": interaction}
            if kind in (4, 7):
                msg = self._message("0", r.body.get("data") or {})
                interaction["response_message_id"] = msg["id"]
                self.last_callback_message_id[r.path] = msg["id"]
                out["resource"] = {"type": kind, "message": msg}
            else:
                out["resource"] = {"type": kind}
            return out, 200
        if parts[0] == "webhooks":
            return self._message("0", r.body or {}), 200
        if parts[0] == "channels" and parts[-1] == "messages" and r.method == "POST":
            if self.dm_channels.get(parts[1]) in self.closed_dms:
                # What Discord answers when the user's privacy settings refuse DMs from the server.
                return {"message": "Cannot send messages to this user", "code": 50007}, 403
            return self._message(parts[1], r.body), 200
        if parts[0] == "channels" and parts[-1] == "threads" and r.method == "POST":
            return {
                "id": str(snowflake()),
                "type": 11,
                "guild_id": r.body.get("guild_id", "0"),
                "parent_id": parts[1],
                "name": r.body["name"],
                "owner_id": self.bot_user["id"],
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": "2026-11-21T12:00:00+00:00",
                    "locked": False,
                },
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
            }, 201
        if parts[0] == "guilds" and parts[2:] == ["members", "@me"] and r.method == "PATCH":
            return {
                "user": self.bot_user,
                "nick": r.body.get("nick"),
                "roles": [],
                "joined_at": "2025-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
            }, 200
        if r.path == "/users/@me/channels" and r.method == "POST":
            channel_id = str(snowflake())
            self.dm_channels[channel_id] = int(r.body["recipient_id"])
            return {
                "id": channel_id,
                "type": 1,
                "recipients": [{"id": r.body["recipient_id"], "username": "u", "discriminator": "0", "avatar": None}],
            }, 200
        return {"message": f"the stand-in does not know {r.method} {r.path}", "code": 0}, 404

    @staticmethod
    def _json(payload: Any, status: int) -> web.Response:
        if status == 204:
            return web.Response(status=204)
        # discord.py parses JSON only when Content-Type is exactly application/json.
        return web.Response(body=json.dumps(payload).encode(), status=status, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        discord.http.Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"
        # The first gateway connection goes to this class attribute (not /gateway/bot).
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/gateway-ws")

    async def stop(self) -> None:
        discord.http.Route.BASE = "https://discord.com/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
        if self.runner is not None:
            await self.runner.cleanup()

    # -- reading what the bot did -------------------------------------------------------

    def where(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    def for_interaction(self, token: str) -> list[Request]:
        return [r for r in self.requests if f"/{token}" in r.path]

    async def wait_for(self, pred: Callable[[list[Request]], bool], timeout: float = 60.0) -> None:
        """Until ``pred(requests)`` holds (the timeout only guards against a hang)."""

        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: pred(self.requests))

        await asyncio.wait_for(waiter(), timeout)

    def posted(self) -> list[Request]:
        """Everything the bot said anywhere (channel messages, interaction replies, followups)."""
        return [
            r
            for r in self.requests
            if r.method in ("POST", "PATCH")
            and (r.path.endswith("/messages") or "/callback" in r.path or r.path.startswith("/webhooks/"))
        ]
