"""A discord.py 2.7.1 VoiceClient that also receives: Discord's voice in, PcmFrames out.

discord.py joins and sends under DAVE but drops everything that arrives. This client
keeps discord.py's connection logic (handshake, DAVE group membership, reconnects) and adds:

* a voice-websocket hook (``VoiceConnectionState(hook=...)``, passed to every websocket
  discord.py opens, so it survives reconnects) that reads who owns which SSRC (SPEAKING 5,
  CLIENT_CONNECT 12), who is in the call (CLIENTS_CONNECT 11, CLIENT_DISCONNECT 13) and,
  after SESSION_DESCRIPTION 4 and the DAVE transitions (21, 22, 24), hands the transport
  key and what the DAVE step may accept (bot.voice.e2ee) to the receiver;
* websockets that drop redelivered messages and check MLS proposals against the call's
  members (bot.voice.voice_ws, bot.voice.connection);
* a UDP keepalive every 5 s for the whole call, on whichever socket is current, as Discord's
  own client sends it (bot.voice.keepalive): without it Discord stops forwarding audio to a
  bot that never speaks;
* a listener on discord.py's own UDP socket reader thread (``add_socket_listener``), which
  counts keepalive echoes and feeds every other datagram to
  :class:`bot.voice.receiver.AudioReceiver`;
* a 20 ms asyncio timer that lets the receiver release due audio to the sink.

The receiver outlives websockets and UDP sockets: a voice-server move, a 4014/4015 close or
a resume only re-applies keys and SSRC mappings, so audio buffered across the gap is kept.

Only ``int`` user ids and :class:`bot.audio.frames.PcmFrame` leave this module; nothing of
discord.py crosses into the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import discord
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import VoiceConnectionState

from bot.audio.frames import PcmFrame
from bot.voice import keepalive
from bot.voice.connection import ReceivingConnectionState
from bot.voice.e2ee import TRANSITION_WINDOW, E2eeTracker
from bot.voice.members import CallMembers
from bot.voice.stats import ReceiveStats
from bot.voice.voice_ws import ReceivingVoiceWebSocket

if TYPE_CHECKING:
    from bot.voice.receiver import AudioReceiver

log = logging.getLogger(__name__)

Sink = Callable[[int, PcmFrame], None]

POLL_INTERVAL = 0.02  # one Opus frame: releases audio as soon as the jitter buffer allows


@dataclass(frozen=True, slots=True)
class VoiceClientCounters:
    """What the client saw, for health checks and tests (per-user counts are in
    :meth:`ReceivingVoiceClient.receive_stats`, which carries these too)."""

    datagrams: int = 0  # UDP datagrams handed to the receiver
    ssrc_mappings: int = 0  # SPEAKING / CLIENT_CONNECT announcements applied
    user_disconnects: int = 0  # CLIENT_DISCONNECT events
    transport_keys: int = 0  # SESSION_DESCRIPTIONs applied (first connect + every re-identify)
    dave_updates: int = 0  # times the receiver was given a new DAVE policy (session, transitions)
    resumes: int = 0  # RESUMED acknowledgements (4015 recovered without a new session)
    redelivered: int = 0  # gateway messages seen again after a resume, and not handled again
    proposals_refused: int = 0  # MLS proposals davey refused (someone not in the call)
    keepalives_sent: int = 0
    keepalives_answered: int = 0  # echoed by the voice server
    keepalive_errors: int = 0  # the socket refused one (mid-reconnect)
    polls: int = 0
    poll_errors: int = 0


class CallReceiveStats(dict[int, ReceiveStats]):
    """Receive counts per user id, with the connection's own counts (keepalives sent and
    answered, mappings, resumes ...) beside them in ``connection``: what a health line needs
    from one call."""

    def __init__(self, users: dict[int, ReceiveStats], connection: VoiceClientCounters) -> None:
        super().__init__(users)
        self.connection = connection

    @property
    def keepalives_sent(self) -> int:
        return self.connection.keepalives_sent

    @property
    def keepalives_answered(self) -> int:
        return self.connection.keepalives_answered


class ReceivingVoiceClient(discord.VoiceClient):
    """``await channel.connect(cls=ReceivingVoiceClient)``, then ``vc.listen(sink)``.

    The sink runs on the event loop thread, every ~20 ms, with (user_id, PcmFrame) in
    48 kHz stereo int16 and ``start`` in seconds of call time; it must not block.
    """

    # Seconds between UDP keepalives (None: send none). Class attributes so that tests can
    # shorten them with a subclass; the defaults are what Discord's own client uses.
    keepalive_interval: float | None = keepalive.INTERVAL
    dave_transition_window: float = TRANSITION_WINDOW

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        self._receiver: AudioReceiver | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._keepalive = keepalive.KeepaliveTracker()
        self._listening = False
        self._socket_listening = False
        self._counters = VoiceClientCounters()
        self._datagrams = 0  # written only by discord.py's socket reader thread
        self._resumed_waiter: asyncio.Future[None] | None = None
        # Kept even while not listening: SPEAKING for people already talking arrives once,
        # right after the handshake, possibly before listen() is called.
        self._ssrc_users: dict[int, int] = {}
        self._e2ee = E2eeTracker(window=self.dave_transition_window)
        self._websockets: list[ReceivingVoiceWebSocket] = []
        self._redelivered_gone = 0
        super().__init__(client, channel)
        self._members = CallMembers(self.user.id, self._channel_voice_states)

    def create_connection_state(self) -> VoiceConnectionState:
        return ReceivingConnectionState(self, hook=self._ws_hook)

    # public API -----------------------------------------------------------------------

    def listen(
        self,
        sink: Sink,
        *,
        opted_out: Iterable[int] = (),
        epoch: float | None = None,
        playout_delay: float = 0.06,
        receiver: AudioReceiver | None = None,
    ) -> None:
        """Start delivering audio. ``epoch`` is the time.monotonic() of call time 0 (default:
        now); ``opted_out`` users' packets are dropped before decryption and decoding.
        ``receiver`` lets a caller supply a preconfigured AudioReceiver instead."""
        if self._listening:
            raise discord.ClientException("already listening")
        if receiver is None:
            from bot.voice.receiver import AudioReceiver

            receiver = AudioReceiver(
                sink,
                epoch=time.monotonic() if epoch is None else epoch,
                playout_delay=playout_delay,
                opted_out=opted_out,
            )
        self._receiver = receiver
        self._listening = True
        self._apply_session()
        for ssrc, uid in self._ssrc_users.items():
            receiver.map_ssrc(ssrc, uid)
        self._listen_socket()
        self._poll_task = self.loop.create_task(self._poll_loop(), name="voice receive poller")

    def stop_listening(self) -> None:
        """Stop receiving; audio still buffered is released to the sink first. (The socket
        listener stays, for the keepalive's echoes, until the connection ends.)"""
        if not self._listening:
            return
        self._listening = False
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        receiver = self._receiver
        if receiver is not None:
            try:
                receiver.flush()
            except Exception:
                log.exception("flushing the receiver failed")

    def is_listening(self) -> bool:
        return self._listening

    def set_opted_out(self, user_ids: Iterable[int]) -> None:
        if self._receiver is not None:
            self._receiver.set_opted_out(user_ids)

    @property
    def receiver(self) -> AudioReceiver | None:
        return self._receiver

    @property
    def counters(self) -> VoiceClientCounters:
        k = self._keepalive.counts
        return replace(
            self._counters,
            datagrams=self._datagrams,
            keepalives_sent=k.sent,
            keepalives_answered=k.answered,
            keepalive_errors=k.send_errors,
            redelivered=self._redelivered_gone + sum(ws.redelivered for ws in self._websockets),
        )

    @property
    def keepalive_counts(self) -> keepalive.KeepaliveCounts:
        return self._keepalive.counts

    def expected_members(self) -> list[int]:
        """User ids the MLS group may hold: ourselves and who Discord says is in the call."""
        return self._members.expected()

    def receive_stats(self) -> CallReceiveStats:
        return CallReceiveStats({} if self._receiver is None else self._receiver.stats(), self.counters)

    def cleanup(self) -> None:
        # discord.py calls this when the connection is finished for good (not on reconnects).
        self.stop_listening()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        if self._socket_listening:
            self._connection.remove_socket_listener(self._on_datagram)
            self._socket_listening = False
        super().cleanup()

    # discord.py callbacks ---------------------------------------------------------------

    def _channel_voice_states(self) -> Iterable[int]:
        states = getattr(self.channel, "voice_states", None)
        return () if not states else list(states)

    def _configure_ws(self, ws: ReceivingVoiceWebSocket) -> None:
        ws.expected_members = self.expected_members
        ws.on_refused_proposal = self._proposal_refused
        # Of sockets long gone only their count of redeliveries is kept.
        keep = self._websockets[-3:]
        self._redelivered_gone += sum(w.redelivered for w in self._websockets[:-3])
        self._websockets = [*keep, ws]

    def _proposal_refused(self, exc: Exception) -> None:
        self._bump(proposals_refused=1)

    def _listen_socket(self) -> None:
        if not self._socket_listening:
            self._socket_listening = True
            self._connection.add_socket_listener(self._on_datagram)

    def _on_datagram(self, data: bytes) -> None:
        if not data:
            return
        if len(data) == keepalive.SIZE and self._keepalive.echo(data, time.monotonic()):
            return
        receiver = self._receiver
        if receiver is None or not self._listening:
            return
        self._datagrams += 1
        receiver.feed(data, time.monotonic())

    def _ensure_keepalive(self) -> None:
        if self.keepalive_interval is None:
            return
        self._listen_socket()  # to hear the echoes, listening or not
        # A new voice session (first connect, re-identify, a new socket after a move): say
        # hello on it at once rather than at the next tick.
        self._send_keepalive()
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = self.loop.create_task(self._keepalive_loop(), name="voice UDP keepalive")

    def _send_keepalive(self) -> None:
        state = self._connection
        sock = state.socket
        if sock is discord.utils.MISSING or state.ip is discord.utils.MISSING:
            return  # between sockets (a reconnect): the next tick goes to the new one
        data = self._keepalive.next(time.monotonic())
        try:
            sock.send(data)
        except (OSError, ValueError):
            self._keepalive.send_failed()

    async def _keepalive_loop(self) -> None:
        interval = self.keepalive_interval
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            try:
                self._send_keepalive()
            except Exception:
                log.exception("voice UDP keepalive failed")

    async def _poll_loop(self) -> None:
        next_due = time.monotonic()
        while self._listening:
            receiver = self._receiver
            if receiver is not None:
                try:
                    receiver.poll()
                except Exception:
                    # A sink bug must not stop the audio of everyone else in the call.
                    self._bump(poll_errors=1)
                    log.exception("receiver poll failed")
                self._bump(polls=1)
            next_due += POLL_INTERVAL
            delay = next_due - time.monotonic()
            if delay < -0.2:  # the loop was blocked; don't try to catch up in a burst
                next_due = time.monotonic()
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))

    def _bump(self, **deltas: int) -> None:
        self._counters = replace(self._counters, **{k: getattr(self._counters, k) + v for k, v in deltas.items()})

    async def _ws_hook(self, ws: DiscordVoiceWebSocket, msg: dict[str, Any]) -> None:
        # Runs after discord.py has handled the message, so its state is already updated.
        try:
            self._on_ws_message(msg)
        except Exception:
            log.exception("voice receive hook failed on op %s", msg.get("op"))

    def _on_ws_message(self, msg: dict[str, Any]) -> None:
        op, d = msg.get("op"), msg.get("d") or {}
        state = self._connection
        now = time.monotonic()
        if op == DiscordVoiceWebSocket.SESSION_DESCRIPTION:
            self._bump(transport_keys=1)
            self._e2ee.session_description(int(d.get("dave_protocol_version") or 0), state.dave_session)
            self._apply_session()
            self._ensure_keepalive()
        elif op == DiscordVoiceWebSocket.DAVE_PREPARE_TRANSITION:
            self._e2ee.session = state.dave_session
            self._e2ee.prepare_transition(int(d["transition_id"]), int(d["protocol_version"]), now)
            self._apply_dave()
        elif op == DiscordVoiceWebSocket.DAVE_EXECUTE_TRANSITION:
            self._e2ee.session = state.dave_session
            self._e2ee.execute_transition(int(d["transition_id"]), now, version=state.dave_protocol_version)
            self._apply_dave()
        elif op == DiscordVoiceWebSocket.DAVE_PREPARE_EPOCH:
            self._e2ee.prepare_epoch(int(d["epoch"]), int(d["protocol_version"]), state.dave_session)
            self._apply_dave()
        elif op == DiscordVoiceWebSocket.RESUMED:
            self._bump(resumes=1)
            if self._resumed_waiter is not None and not self._resumed_waiter.done():
                self._resumed_waiter.set_result(None)
        elif op == DiscordVoiceWebSocket.SPEAKING:
            self._map(d.get("user_id"), d.get("ssrc"))
        elif op == DiscordVoiceWebSocket.CLIENT_CONNECT:
            # Undocumented (absent from Discord's opcode table) but still sent by some
            # servers for clients that negotiate video; it carries the audio SSRC.
            self._map(d.get("user_id"), d.get("audio_ssrc"))
        elif op == DiscordVoiceWebSocket.CLIENTS_CONNECT:
            self._members.connected(int(uid) for uid in d.get("user_ids") or ())
        elif op == DiscordVoiceWebSocket.CLIENT_DISCONNECT:
            user_id = d.get("user_id")
            if user_id is not None:
                self._bump(user_disconnects=1)
                self._members.disconnected(int(user_id))
                for ssrc in [s for s, u in self._ssrc_users.items() if u == int(user_id)]:
                    del self._ssrc_users[ssrc]
                if self._receiver is not None:
                    self._receiver.remove_user(int(user_id))

    def _map(self, user_id: Any, ssrc: Any) -> None:
        if user_id is None or not ssrc:
            return
        uid, s = int(user_id), int(ssrc)
        if s == self._connection.ssrc or uid == self.user.id:
            return
        self._bump(ssrc_mappings=1)
        self._ssrc_users[s] = uid
        if self._receiver is not None:
            self._receiver.map_ssrc(s, uid)

    def _apply_session(self) -> None:
        receiver, state = self._receiver, self._connection
        if receiver is None:
            return
        if state.mode is not discord.utils.MISSING and state.secret_key is not discord.utils.MISSING:
            receiver.set_transport(state.mode, bytes(state.secret_key))
        self._apply_dave()

    def _apply_dave(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        receiver.set_e2ee_policy(self._e2ee.policy)
        self._bump(dave_updates=1)
