"""A fake Discord voice server on 127.0.0.1: voice websocket (v8, TLS), UDP, RTP, DAVE.

It speaks the server side of what discord.py 2.7.1's real voice client needs:

* websocket: HELLO(8) on connect; IDENTIFY(0) -> READY(2); SELECT_PROTOCOL(1) ->
  SESSION_DESCRIPTION(4); HEARTBEAT(3) -> HEARTBEAT_ACK(6); RESUME(7) -> RESUMED(9); and,
  towards the bot, CLIENTS_CONNECT(11), CLIENT_CONNECT(12, with audio_ssrc), SPEAKING(5),
  CLIENT_DISCONNECT(13). Every server message carries ``seq`` (JSON) or a 2-byte sequence
  prefix (binary), as in gateway v8.
* UDP: the 74-byte IP discovery exchange, then RTP from each simulated member.
* DAVE v1: the double is the MLS external sender (opcode 25), and each simulated member is a
  real ``davey.DaveSession``. The first member commits the external proposals that add the
  bot (and later joiners); the bot gets MLS_WELCOME(30) / MLS_ANNOUNCE_COMMIT_TRANSITION(29)
  and must confirm with DAVE_TRANSITION_READY(23) before DAVE_EXECUTE_TRANSITION(22); the
  members switch their sending keys only then, as DAVE clients do. The
  bot is also sent the same proposals (27), as Discord does, and its COMMIT_WELCOME(28)
  answer is recorded; the double always lets a simulated member win the commit race.
* impairments: loss, reordering, jitter, duplicates and garbage datagrams, RTCP (RR,
  transport-cc 205, PLI 206) and padding-only packets, seeded.

Where it matters for a receiver it behaves as Discord does:

* UDP: 8-byte keepalives are echoed unchanged (Discord's SFU does, ntop/nDPI's captures of
  the real client show it), and media stops being forwarded to a client whose UDP has
  been silent for ``udp_idle_timeout`` seconds (receivers lose audio after minutes without
  keepalives: discord-ext-voice-recv #8, py-cord #3388); it flows again once the client
  sends anything.
* Buffered resume (voice gateway v8): messages sent while the bot's websocket is down are
  kept and re-sent after RESUMED, after those the bot acknowledged (``seq_ack``);
  ``redeliver_extra`` re-sends some it had already acknowledged, which Discord may do.
* CLIENTS_CONNECT (11) for a newcomer precedes the MLS proposal that adds them.
* DAVE: the bot's welcome can be delayed (``welcome_delay``) while members already talk;
  downgrades (21/22 to protocol 0) and upgrades (24 epoch 1, then welcome and 22) happen
  with media in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import davey
from aiohttp import WSMsgType, web

from . import mls, rtp
from .speech import FRAME_SAMPLES, EncodedSpeech
from .tls import TlsPair

_log = logging.getLogger(__name__)

MODES = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.0  # probability a packet is dropped
    reorder: float = 0.0  # probability a packet is held back behind the next 1-3
    jitter_ms: float = 0.0  # uniform extra delay per packet, 0..jitter_ms
    duplicate: float = 0.0  # probability a packet is sent twice
    garbage: float = 0.0  # probability a junk datagram is sent alongside
    rtcp: float = 0.0  # probability an RTCP receiver report is sent alongside (Discord does)
    rtcp_feedback: float = 0.0  # probability of a transport-cc (205) or PLI (206) alongside
    padding: float = 0.0  # probability a padding-only packet (own sequence number) follows
    seed: int = 0


@dataclass
class Member:
    """A simulated participant: its own SSRC, RTP counters and DAVE session."""

    user_id: int
    ssrc: int
    dave: davey.DaveSession | None
    seq: int = field(default_factory=lambda: random.randrange(1 << 16))
    timestamp: int = field(default_factory=lambda: random.randrange(1 << 32))
    nonce: int = 0
    sent: int = 0
    dropped: int = 0
    last_frame_at: float | None = None  # monotonic time the last frame was due
    # Sends plain Opus although it has a DAVE session: an upgrade not yet executed, or
    # after a downgrade.
    plain: bool = False
    hidden: bool = False  # never announced in CLIENTS_CONNECT
    frames: int = 0  # media packets built, all streams
    encrypted: int = 0  # of which DAVE-encrypted


@dataclass
class StreamResult:
    user_id: int
    ssrc: int
    first_timestamp: int  # RTP timestamp of frame 0
    started_at: float  # time.monotonic() when frame 0 was due
    sent: int  # datagrams, duplicates included
    dropped: int
    duplicated: int = 0
    garbage: int = 0
    # (frame index, time.monotonic()) of every datagram as it actually left, dups included.
    # Under CPU load the double's own loop is late too, so timing is judged against this.
    send_log: list[tuple[int, float]] = field(default_factory=list)
    padding: int = 0  # padding-only packets sent between the frames (not in ``sent``)

    @property
    def emitted(self) -> list[int]:
        """Frame indices in the order they left."""
        return [i for i, _ in self.send_log]

    def dave_early(self) -> int:
        """Datagrams that left before this sender's first-sent frame but belong to earlier
        frames. davey fixes each sender's nonce baseline at the first frame it decrypts and
        rejects anything older, so with DAVE these fail (and only these, besides replays)."""
        emitted = self.emitted
        if not emitted:
            return 0
        return sum(1 for i in emitted if i < emitted[0])

    def max_lateness(self) -> float:
        """How far behind its 20 ms schedule the double's own sending fell (seconds). On a
        loaded 2-core machine the test process can stall; beyond the receiver's playout
        delay that makes frames late, which the receiver then rightly conceals."""
        return max((t - (self.started_at + i * 0.02) for i, t in self.send_log), default=0.0)

    def timing_window(self) -> tuple[float, float]:
        """Where frame 0 belongs in monotonic time, as a receiver can know it: somewhere
        between the earliest and the latest start implied by a datagram's departure (a
        receiver anchors on an arrival and may re-anchor on a later or better one). Without
        stalls the window is as wide as the jitter; a stall widens it honestly."""
        implied = [t - i * 0.02 for i, t in self.send_log]
        return min(implied), max(implied)


class VoiceServerDouble:
    def __init__(
        self,
        tls: TlsPair,
        *,
        guild_id: int,
        channel_id: int,
        token: str,
        dave: bool = True,
        modes: list[str] | None = None,
        heartbeat_interval_ms: int = 13_750,
        resume_allowed: bool = True,
        udp_idle_timeout: float | None = 30.0,
        resume_delay: float = 0.0,
        redeliver_extra: int = 0,
        welcome_delay: float = 0.0,
    ) -> None:
        self.tls = tls
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.token = token
        self.dave_version = davey.DAVE_PROTOCOL_VERSION if dave else 0
        self.modes = list(modes or MODES)
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.resume_allowed = resume_allowed  # False: answer RESUME with 4006, as after a real crash
        # Media is not forwarded to a client whose UDP has been silent this long (None: always).
        self.udp_idle_timeout = udp_idle_timeout
        self.resume_delay = resume_delay  # seconds before answering RESUME (a slow resume)
        self.redeliver_extra = redeliver_extra  # acknowledged messages re-sent on resume
        self.welcome_delay = welcome_delay  # seconds before the bot's key package is committed

        self.members: dict[int, Member] = {}
        self.external_sender = mls.ExternalSender()
        self.group_epoch: int | None = None  # None until the members' MLS group exists

        self.bot_user_id: int | None = None
        self.bot_session_id: str | None = None
        self.bot_ssrc = random.randrange(1, 1 << 31)
        self.mode: str | None = None
        self.secret_key: bytes = b""
        self.client_addr: tuple[str, int] | None = None

        # What the bot did, for assertions.
        self.identifies = 0
        self.resumes = 0
        self.resume_attempts = 0
        self.heartbeats = 0
        self.select_protocols: list[dict[str, Any]] = []
        self.key_packages: list[bytes] = []
        self.bot_commit_welcomes: list[bytes] = []
        self.transition_ready: list[int] = []
        self.invalid_commit: list[int] = []
        self.bot_rtp: int = 0
        # What the bot said, as a member hears it: Opus after transport and DAVE decryption
        # (None where either failed).
        self.bot_heard: list[bytes | None] = []
        self.bot_speaking: list[dict[str, Any]] = []
        self.executed_at: float | None = None  # when the last DAVE transition was executed
        self.keepalives = 0  # 8-byte keepalives the bot sent (each echoed)
        self.withheld = 0  # datagrams not forwarded: the bot's UDP had gone silent
        self.redelivered = 0  # messages re-sent after a resume
        self.last_client_datagram: float | None = None
        # Every numbered message sent in this voice session, for buffered resume.
        self._outbox: list[tuple[int, str, Any]] = []
        self._buffering = False  # the bot's websocket is down and a resume is expected

        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._transition_ids = iter(range(1, 1 << 16))
        self._dave_ready = asyncio.Event()
        self._session_ready = asyncio.Event()
        self._transition_waiters: dict[int, asyncio.Future[None]] = {}
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.ws_port = 0
        self.udp_port = 0
        self._lock = asyncio.Lock()
        self._founder: Member | None = None
        self._upgrade_joiners: list[tuple[Member, bytes]] = []
        self._upgrading = False
        self._held_media: list[bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []

    # lifecycle -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ws_port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=("127.0.0.1", 0), family=socket.AF_INET
        )
        self.udp_port = self._udp.get_extra_info("sockname")[1]
        app = web.Application()
        app.router.add_get("/", self._handle_ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server)
        await site.start()
        self.ws_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]
            _log.error("voice double task failed", exc_info=task.exception())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._udp is not None:
            self._udp.close()

    async def wait_transport(self, timeout: float = 15.0) -> None:
        """Until the bot has its transport key (UDP works; DAVE may not be joined yet)."""
        await asyncio.wait_for(self._session_ready.wait(), timeout)

    async def wait_session(self, timeout: float = 15.0) -> None:
        """Until the bot has its transport key and, with DAVE, has joined the MLS group."""
        await asyncio.wait_for(self._session_ready.wait(), timeout)
        if self.dave_version:
            await asyncio.wait_for(self._dave_ready.wait(), timeout)

    # websocket -----------------------------------------------------------------------

    # Per-connection messages, never numbered nor re-sent: HELLO, HEARTBEAT_ACK, RESUMED.
    _UNNUMBERED = frozenset({6, 8, 9})
    _OUTBOX = 512

    async def _send(self, op: int, d: Any) -> None:
        if op in self._UNNUMBERED:
            await self._deliver("json", {"op": op, "d": d}, buffer=False)
            return
        self._seq += 1
        msg = {"op": op, "d": d, "seq": self._seq}
        self._outbox.append((self._seq, "json", msg))
        del self._outbox[: -self._OUTBOX]
        await self._deliver("json", msg)

    async def _send_binary(self, op: int, payload: bytes) -> None:
        self._seq += 1
        data = struct.pack(">HB", self._seq & 0xFFFF, op) + payload
        self._outbox.append((self._seq, "binary", data))
        del self._outbox[: -self._OUTBOX]
        await self._deliver("binary", data)

    async def _deliver(self, kind: str, data: Any, *, buffer: bool = True) -> None:
        if buffer and self._buffering:
            # The session's websocket is down (or reconnected but not yet resumed): kept in
            # the outbox and re-sent after RESUMED, as the voice gateway does.
            return
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("bot is not connected to the voice double")
        if kind == "json":
            await ws.send_str(json.dumps(data))
        else:
            await ws.send_bytes(data)

    async def close_ws(self, code: int) -> None:
        """Close the bot's voice websocket the way Discord does on 4014/4015/4006...
        After 4015 ("voice server crashed", resume expected) messages are buffered."""
        self._buffering = code == 4015
        if self._ws is not None:
            await self._ws.close(code=code)

    # public announcements, for tests that control their order and timing

    async def clients_connect(self, user_ids: list[int]) -> None:
        await self._send(11, {"user_ids": [str(u) for u in user_ids]})

    async def announce(self, user_id: int, *, via_client_connect: bool = False) -> None:
        """Reveal a member's SSRC to the bot (SPEAKING, or the older CLIENT_CONNECT)."""
        await self._announce_ssrc(self.members[user_id], via_client_connect=via_client_connect)

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        if request.query.get("v") != "8":
            raise web.HTTPBadRequest(text="voice gateway v8 only")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=4014)  # one bot session at a time, like Discord
        self._ws = ws
        self._session_ready.clear()
        await self._send(8, {"heartbeat_interval": self.heartbeat_interval_ms, "v": 8})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_json(json.loads(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    await self._on_binary(msg.data)
        except ConnectionError:
            pass
        except Exception:
            _log.exception("voice double websocket handler failed")
            if not ws.closed:
                await ws.close(code=4000)
        return ws

    async def _on_json(self, msg: dict[str, Any]) -> None:
        op, d = msg["op"], msg.get("d")
        if op == 0:
            await self._identify(d)
        elif op == 1:
            await self._select_protocol(d)
        elif op == 3:
            self.heartbeats += 1
            await self._send(6, {"t": d.get("t") if isinstance(d, dict) else d})
        elif op == 5:
            self.bot_speaking.append(d)
        elif op == 7:
            await self._resume(d)
        elif op == 23:
            tid = int(d["transition_id"])
            self.transition_ready.append(tid)
            fut = self._transition_waiters.get(tid)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif op == 31:
            # The bot could not use a commit or welcome; it re-joins with a new key package.
            tid = int(d["transition_id"])
            self.invalid_commit.append(tid)
            fut = self._transition_waiters.get(tid)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif op == 12:
            pass  # the bot announcing its own media ssrcs

    async def _identify(self, d: dict[str, Any]) -> None:
        if d.get("token") != self.token or int(d.get("server_id", 0)) != self.guild_id:
            await self.close_ws(4004)  # authentication failed
            return
        self.identifies += 1
        self.bot_user_id = int(d["user_id"])
        self.bot_session_id = d["session_id"]
        if int(d.get("max_dave_protocol_version", 0)) < self.dave_version:
            await self.close_ws(4017)  # E2EE/DAVE protocol required
            return
        # A fresh identify is a fresh voice session: new SSRC, new key, new MLS membership.
        self.bot_ssrc = random.randrange(1, 1 << 31)
        self._dave_ready.clear()
        self._outbox.clear()
        self._buffering = False
        await self._send(
            2,
            {
                "ssrc": self.bot_ssrc,
                "ip": "127.0.0.1",
                "port": self.udp_port,
                "modes": self.modes,
                "heartbeat_interval": 1,  # discord.py ignores this (legacy field)
            },
        )

    async def _select_protocol(self, d: dict[str, Any]) -> None:
        data = d["data"]
        mode = data["mode"]
        if mode not in self.modes:
            await self.close_ws(4016)  # unknown encryption mode
            return
        self.select_protocols.append(data)
        self.mode = mode
        self.secret_key = os.urandom(32)
        await self._send(
            4,
            {
                "audio_codec": "opus",
                "video_codec": "H264",
                "media_session_id": os.urandom(16).hex(),
                "mode": mode,
                "secret_key": list(self.secret_key),
                "dave_protocol_version": self.dave_version,
            },
        )
        self._session_ready.set()
        await self._announce_members()
        if self.dave_version:
            await self._send_binary(25, self.external_sender.package())

    async def _resume(self, d: dict[str, Any]) -> None:
        self.resume_attempts += 1
        if (
            d.get("token") != self.token
            or d.get("session_id") != self.bot_session_id
            or int(d.get("server_id", 0)) != self.guild_id
            or not self.secret_key
            or not self.resume_allowed
        ):
            await self.close_ws(4006)  # session no longer valid
            return
        self.resumes += 1
        if self.resume_delay:
            await asyncio.sleep(self.resume_delay)
        # A resumed session keeps its SSRC, key and MLS state: Discord sends RESUMED, then
        # what the bot missed (buffered resume, gateway v8).
        await self._send(9, None)
        self._buffering = False
        seq_ack = int(d.get("seq_ack", -1))
        missed = [i for i, (seq, _, _) in enumerate(self._outbox) if seq > seq_ack]
        first = missed[0] if missed else len(self._outbox)
        for _, kind, data in self._outbox[max(0, first - self.redeliver_extra) :]:
            self.redelivered += 1
            await self._deliver(kind, data)
        self._session_ready.set()

    async def _on_binary(self, data: bytes) -> None:
        op, payload = data[0], data[1:]
        if op == 26:
            self.key_packages.append(payload)
            # Not inline: the commit flow waits for the bot's TRANSITION_READY, which this
            # very handler loop has to read.
            task = asyncio.get_running_loop().create_task(self._add_bot_to_group(payload))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        elif op == 28:
            self.bot_commit_welcomes.append(payload)

    # members and DAVE ---------------------------------------------------------------

    async def _announce_members(self) -> None:
        if not self.members:
            return
        await self._send(11, {"user_ids": [str(uid) for uid, m in self.members.items() if not m.hidden]})
        for i, m in enumerate(self.members.values()):
            await self._announce_ssrc(m, via_client_connect=(i % 2 == 1))

    async def _announce_ssrc(self, m: Member, *, via_client_connect: bool) -> None:
        # Discord reveals a member's audio SSRC with SPEAKING or, for clients that also
        # negotiate video, with opcode 12; the bot must understand both.
        if via_client_connect:
            await self._send(
                12,
                {"user_id": str(m.user_id), "audio_ssrc": m.ssrc, "video_ssrc": 0, "rtx_ssrc": 0, "streams": []},
            )
        else:
            await self._send(5, {"user_id": str(m.user_id), "ssrc": m.ssrc, "speaking": 1})

    def _committer(self) -> Member | None:
        return next((m for m in self.members.values() if m.dave is not None and m.dave.ready), None)

    async def add_member(
        self, user_id: int, *, announce: bool = True, via_client_connect: bool = False, connect: bool = True
    ) -> Member:
        """A user joins the call (before or after the bot). As on Discord, the bot hears
        CLIENTS_CONNECT first (``connect``; False: a proposal for someone the bot was never
        told about), then the MLS proposal, then (``announce``) the member's SSRC."""
        async with self._lock:
            online = self._ws is not None and not self._ws.closed and self._session_ready.is_set()
            if connect and online:
                await self._send(11, {"user_ids": [str(user_id)]})
            session = None
            if self.dave_version:
                session = davey.DaveSession(self.dave_version, user_id, self.channel_id)
            m = Member(user_id=user_id, ssrc=random.randrange(1, 1 << 31), dave=session, hidden=not connect)
            if session is not None:
                key_package = session.get_serialized_key_package()
                session.set_external_sender(self.external_sender.package())
                if self._founder is None:
                    # The first member's pending group becomes the group when it commits
                    # the next addition; until then it has nobody to encrypt for.
                    self._founder = m
                else:
                    await self._commit_add([(m, key_package)])
            self.members[user_id] = m
            if announce and online:
                await self._announce_ssrc(m, via_client_connect=via_client_connect)
            return m

    async def _commit_add(self, joiners: list[tuple[Member, bytes]], *, bot_key_package: bytes | None = None) -> None:
        """External Add proposals, committed by a member; the welcome goes to the joiners."""
        committer = self._committer() or self._founder
        assert committer is not None and committer.dave is not None
        epoch = committer.dave.epoch if committer.dave.ready else 0
        group_id = mls.group_id_for_channel(self.channel_id)
        proposals = [self.external_sender.add_proposal(group_id, epoch, kp) for _, kp in joiners]
        if bot_key_package is not None:
            proposals.append(self.external_sender.add_proposal(group_id, epoch, bot_key_package))
        vector = mls.proposals_vector(proposals)
        bot_in_group = self._dave_ready.is_set()
        if bot_in_group:
            # Discord sends the proposals to every member; the bot answers with its own
            # commit, which loses the race here.
            await self._send_binary(27, bytes([0]) + vector)
        # Every member gets the proposals (a commit refers to them by reference); each would
        # answer with its own commit, and the committer's is the one the server picks.
        for m in self.members.values():
            if m is not committer and m.dave is not None and m.dave.ready:
                m.dave.process_proposals(davey.ProposalsOperationType.append, vector)
        cw = committer.dave.process_proposals(davey.ProposalsOperationType.append, vector)
        assert cw is not None, "committer produced no commit"
        tid: int | None = None
        if bot_in_group:
            tid = next(self._transition_ids)
            await self._send_binary(29, struct.pack(">H", tid) + cw.commit)
            await self._await_ready(tid)
        elif bot_key_package is not None:
            tid = next(self._transition_ids)
            await self._send_binary(30, struct.pack(">H", tid) + cw.welcome)
            await self._await_ready(tid)
        # Senders move to the new epoch's keys only once every recipient is ready (the point
        # of DAVE's transitions), so the simulated members apply the commit now. Until then
        # the bot must still decrypt their frames with the previous epoch's keys.
        for m in self.members.values():
            if m.dave is not None and (m.dave.ready or m is committer) and all(m is not j for j, _ in joiners):
                m.dave.process_commit(cw.commit)
        for j, _ in joiners:
            j.dave.process_welcome(cw.welcome)
        if tid is not None:
            await self._send(22, {"transition_id": tid})
            self.executed_at = time.monotonic()
            if not bot_in_group:
                self._dave_ready.set()
            if self._upgrading:
                self._upgrading = False
                for m in self.members.values():
                    m.plain = False  # senders switch to E2EE at the execute
        self.group_epoch = committer.dave.epoch

    async def _await_ready(self, tid: int, timeout: float = 5.0) -> None:
        """Until the bot sends DAVE_TRANSITION_READY (23) for ``tid``."""
        fut = asyncio.get_running_loop().create_future()
        self._transition_waiters[tid] = fut
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._transition_waiters.pop(tid, None)

    async def _add_bot_to_group(self, key_package: bytes) -> None:
        # A key package means a fresh MLS identity for the bot (new session or reinit).
        self._dave_ready.clear()
        if self.welcome_delay:
            await asyncio.sleep(self.welcome_delay)  # the members talk on meanwhile
        async with self._lock:
            if not self.members:
                return
            joiners, self._upgrade_joiners = self._upgrade_joiners, []
            await self._commit_add(joiners, bot_key_package=key_package)

    # protocol transitions (DAVE whitepaper: upgrade from / downgrade to transport-only)

    async def downgrade(self, *, hold: bool = False) -> int:
        """A client without DAVE joins: PREPARE_TRANSITION to protocol 0, the bot's
        TRANSITION_READY, EXECUTE_TRANSITION; the members send plain Opus from then on.
        ``hold``: media sent from now on reaches the bot only on ``release_held()``, after
        the execute (frames in flight across the transition). Returns the transition id."""
        async with self._lock:
            tid = next(self._transition_ids)
            await self._send(21, {"transition_id": tid, "protocol_version": 0})
            await self._await_ready(tid)
            if hold:
                self._held_media = []
            await asyncio.sleep(0.1)  # a moment of speech under the old keys, held back
            await self._send(22, {"transition_id": tid})
            for m in self.members.values():
                m.plain = True
            return tid

    def release_held(self) -> int:
        held, self._held_media = self._held_media or [], None
        for datagram in held:
            self._forward(datagram)
        return len(held)

    async def upgrade(self) -> None:
        """The last client without DAVE left a transport-only call: PREPARE_EPOCH (epoch 1,
        protocol 1) and the external sender go out, the bot's key package is committed with
        every member's, the welcome and EXECUTE_TRANSITION follow; members send plain Opus
        until then and encrypted frames after."""
        async with self._lock:
            self.dave_version = davey.DAVE_PROTOCOL_VERSION
            self._founder = None
            self._upgrade_joiners = []
            for m in self.members.values():
                m.dave = davey.DaveSession(self.dave_version, m.user_id, self.channel_id)
                m.plain = True
                key_package = m.dave.get_serialized_key_package()
                m.dave.set_external_sender(self.external_sender.package())
                if self._founder is None:
                    self._founder = m
                else:
                    self._upgrade_joiners.append((m, key_package))
            self._upgrading = True
            self._dave_ready.clear()
            await self._send(24, {"protocol_version": self.dave_version, "epoch": 1})
            await self._send_binary(25, self.external_sender.package())

    async def remove_member(self, user_id: int) -> Member:
        """A user leaves the call: CLIENT_DISCONNECT, and the MLS group drops their leaf.
        Returns the departed member, whose SSRC tests may keep sending on."""
        async with self._lock:
            m = self.members.pop(user_id)
            await self._send(13, {"user_id": str(user_id)})
            if m.dave is None or not m.dave.ready:
                return m
            committer = self._committer()
            if committer is None:
                return m
            group_id = mls.group_id_for_channel(self.channel_id)
            vector = mls.proposals_vector(
                [self.external_sender.remove_proposal(group_id, committer.dave.epoch, m.dave.own_leaf_index)]
            )
            await self._send_binary(27, bytes([0]) + vector)
            for other in self.members.values():
                if other is not committer and other.dave is not None and other.dave.ready:
                    other.dave.process_proposals(davey.ProposalsOperationType.append, vector)
            cw = committer.dave.process_proposals(davey.ProposalsOperationType.append, vector)
            assert cw is not None
            tid = next(self._transition_ids)
            await self._send_binary(29, struct.pack(">H", tid) + cw.commit)
            await self._await_ready(tid)
            for other in self.members.values():  # senders switch keys once all are ready
                if other.dave is not None and other.dave.ready:
                    other.dave.process_commit(cw.commit)
            await self._send(22, {"transition_id": tid})
            return m

    # UDP -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr == self.client_addr or len(data) == 74:
            self.last_client_datagram = time.monotonic()
        if len(data) == 74 and data[:4] == b"\x00\x01\x00\x46":
            ssrc = struct.unpack_from(">I", data, 4)[0]
            reply = bytearray(74)
            struct.pack_into(">HHI", reply, 0, 2, 70, ssrc)
            ip = addr[0].encode()
            reply[8 : 8 + len(ip)] = ip
            struct.pack_into(">H", reply, 72, addr[1])
            self.client_addr = addr
            assert self._udp is not None
            self._udp.sendto(bytes(reply), addr)
        elif len(data) == 8:
            # A keepalive: Discord's voice server echoes it unchanged.
            self.keepalives += 1
            assert self._udp is not None
            self._udp.sendto(data, addr)
        elif len(data) >= 12 and data[1] & 0x7F == rtp.OPUS_PT:
            self.bot_rtp += 1
            self.bot_heard.append(self._hear_bot(data))

    def client_idle(self) -> bool:
        """Whether the bot's UDP has been silent too long for media to be forwarded to it."""
        last = self.last_client_datagram
        return (
            self.udp_idle_timeout is not None and last is not None and time.monotonic() - last > self.udp_idle_timeout
        )

    def _hear_bot(self, datagram: bytes) -> bytes | None:
        if self.mode is None:
            return None
        try:
            _, frame = rtp.decrypt(self.mode, self.secret_key, datagram)
        except Exception:
            return None
        listener = self._committer()
        if listener is None or self.bot_user_id is None or frame == rtp.OPUS_SILENCE:
            return frame
        try:
            return listener.dave.decrypt(self.bot_user_id, davey.MediaType.audio, frame)
        except Exception:
            return None

    def send_raw(self, datagram: bytes) -> None:
        """Forward a datagram to the bot, as the SFU does: not while its UDP is silent."""
        if self._udp is None or self.client_addr is None:
            raise ConnectionError("no UDP peer yet (IP discovery not done)")
        if self._held_media is not None:
            self._held_media.append(datagram)
            return
        self._forward(datagram)

    def _forward(self, datagram: bytes) -> None:
        if self.client_idle():
            self.withheld += 1
            return
        assert self._udp is not None and self.client_addr is not None
        self._udp.sendto(datagram, self.client_addr)

    def media_packet(self, m: Member, opus_packet: bytes, *, extension: bool = True) -> bytes:
        """One RTP packet for ``m``: DAVE frame encryption, then transport encryption."""
        payload = opus_packet
        if m.dave is not None and not m.plain:
            payload = m.dave.encrypt_opus(opus_packet)
            if payload != opus_packet:
                m.encrypted += 1
        m.frames += 1
        if self.mode is None:
            raise ConnectionError("no session description yet")
        pkt = rtp.packet(
            self.mode,
            self.secret_key,
            seq=m.seq,
            timestamp=m.timestamp,
            ssrc=m.ssrc,
            payload=payload,
            counter=m.nonce,
            extension=rtp.audio_level_extension() if extension else None,
        )
        m.seq = (m.seq + 1) & 0xFFFF
        m.timestamp = (m.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        m.nonce = (m.nonce + 1) & 0xFFFFFFFF
        return pkt

    def padding_packet(self, m: Member, pad: int = 32) -> bytes:
        """A padding-only RTP packet for ``m`` (what WebRTC sends to probe bandwidth): the
        padding bit, no media, its own sequence number, the last media timestamp."""
        if self.mode is None:
            raise ConnectionError("no session description yet")
        pkt = rtp.padding_packet(
            self.mode,
            self.secret_key,
            seq=m.seq,
            timestamp=(m.timestamp - FRAME_SAMPLES) & 0xFFFFFFFF,
            ssrc=m.ssrc,
            counter=m.nonce,
            pad=pad,
            extension=rtp.audio_level_extension(127),
        )
        m.seq = (m.seq + 1) & 0xFFFF
        m.nonce = (m.nonce + 1) & 0xFFFFFFFF
        return pkt

    def send_padding(self, user_id: int, count: int) -> None:
        m = self.members[user_id]
        for _ in range(count):
            self.send_raw(self.padding_packet(m))

    async def stream(
        self,
        user_id: int,
        speech: EncodedSpeech,
        impairment: Impairment = Impairment(),
        *,
        trailing_silence_frames: int = 5,
        contiguous_timestamps: bool = False,
    ) -> StreamResult:
        """Send ``speech`` as ``user_id`` in real time (20 ms apart), impaired as asked.

        Ends, like Discord clients, with a few Opus silence frames before going quiet. Like
        Discord's (WebRTC) clients, the RTP timestamp keeps running while the member is
        quiet, so a new talk spurt's timestamp jumps by the silence; sequence numbers do not.
        ``contiguous_timestamps`` sends the next frame's timestamp instead, as discord.py's
        own sender does."""
        m = self.members[user_id]
        # Seeded by the member's position, not its (random) ids, so a run can be repeated;
        # STALK_TEST_SEED shifts every seed (benchmarks/spread.py varies it).
        shift = int(os.environ.get("STALK_TEST_SEED", "0")) * 7919
        rng = random.Random(impairment.seed * 1000 + list(self.members).index(user_id) + shift)
        loop = asyncio.get_running_loop()
        frames = list(speech.packets) + [rtp.OPUS_SILENCE] * trailing_silence_frames
        start = time.monotonic() + 0.02
        if m.last_frame_at is not None and not contiguous_timestamps:
            silent_frames = max(0, round((start - m.last_frame_at) / 0.02) - 1)
            m.timestamp = (m.timestamp + silent_frames * FRAME_SAMPLES) & 0xFFFFFFFF
        first_ts = m.timestamp
        held: list[tuple[int, bytes]] = []
        send_log: list[tuple[int, float]] = []
        sent = dropped = duplicated = garbage = padding = 0
        for i, opus_packet in enumerate(frames):
            due = start + i * 0.02
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pkt = self.media_packet(m, opus_packet)
            if rng.random() < impairment.loss:
                dropped += 1
                continue
            out = [(i, pkt)]
            if rng.random() < impairment.duplicate:
                out.append((i, pkt))
                duplicated += 1
            if rng.random() < impairment.reorder and i + 1 < len(frames):
                held.extend(out)  # goes out right after the next packet
                continue
            out.extend(held)
            held.clear()
            for index, p in out:
                self._send_later(loop, p, rng.uniform(0, impairment.jitter_ms) / 1000, send_log, index)
            sent += len(out)
            if rng.random() < impairment.garbage:
                self._send_later(loop, os.urandom(rng.randrange(1, 200)), 0)
                garbage += 1
            if rng.random() < impairment.rtcp:
                self._send_later(loop, rtp.receiver_report(m.ssrc), 0)
            # Drawn only when asked for, so that a seed gives the impairments it always gave.
            if impairment.rtcp_feedback and rng.random() < impairment.rtcp_feedback:
                feedback = rtp.transport_feedback if rng.random() < 0.5 else rtp.picture_loss
                self._send_later(loop, feedback(self.bot_ssrc, m.ssrc), 0)
            if impairment.padding and rng.random() < impairment.padding and i + 1 < len(frames):
                self._send_later(loop, self.padding_packet(m), 0)
                padding += 1
        for index, p in held:
            self._send_later(loop, p, 0, send_log, index)
        sent += len(held)
        # Let the last jittered packets leave before reporting what was sent.
        await asyncio.sleep(impairment.jitter_ms / 1000 + 0.005)
        m.sent += sent
        m.dropped += dropped
        m.last_frame_at = start + (len(frames) - 1) * 0.02
        return StreamResult(user_id, m.ssrc, first_ts, start, sent, dropped, duplicated, garbage, send_log, padding)

    def _send_later(
        self,
        loop: asyncio.AbstractEventLoop,
        pkt: bytes,
        delay: float,
        log: list[tuple[int, float]] | None = None,
        index: int = -1,
    ) -> None:
        if delay <= 0:
            self._safe_send(pkt, log, index)
        else:
            loop.call_later(delay, self._safe_send, pkt, log, index)

    def _safe_send(self, pkt: bytes, log: list[tuple[int, float]] | None = None, index: int = -1) -> None:
        try:
            self.send_raw(pkt)
        except (ConnectionError, OSError):
            return
        if log is not None:
            log.append((index, time.monotonic()))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServerDouble) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._on_datagram(data, addr)
