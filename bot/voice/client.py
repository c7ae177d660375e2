"""A discord.py 2.7.1 VoiceClient that also receives: Discord's voice in, PcmFrames out.

discord.py joins and sends under DAVE but drops everything that arrives. This client
keeps discord.py's connection logic (handshake, DAVE group membership, reconnects) and adds:

* a voice-websocket hook (``VoiceConnectionState(hook=...)``, passed to every websocket
  discord.py opens, so it survives reconnects) that reads who owns which SSRC (SPEAKING 5,
  CLIENT_CONNECT 12), who left (CLIENT_DISCONNECT 13) and, after SESSION_DESCRIPTION 4 and
  DAVE transitions, hands the transport key and the davey session to the receiver;
* a listener on discord.py's own UDP socket reader thread (``add_socket_listener``), which
  feeds every datagram to :class:`bot.voice.receiver.AudioReceiver`;
* a 20 ms asyncio timer that lets the receiver release due audio to the sink.

The receiver outlives websockets and UDP sockets: a voice-server move, a 4014/4015 close or
a resume only re-applies keys and SSRC mappings, so audio buffered across the gap is kept.

Only ``int`` user ids and :class:`bot.audio.frames.PcmFrame` leave this module; nothing of
discord.py crosses into the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import discord
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from bot.audio.frames import PcmFrame

if TYPE_CHECKING:
    from bot.voice.receiver import AudioReceiver
    from bot.voice.stats import ReceiveStats

log = logging.getLogger(__name__)

Sink = Callable[[int, PcmFrame], None]

POLL_INTERVAL = 0.02  # one Opus frame: releases audio as soon as the jitter buffer allows


@dataclass(frozen=True, slots=True)
class VoiceClientCounters:
    """What the client saw, for health checks and tests (receiver-level counts are in
    :meth:`ReceivingVoiceClient.receive_stats`)."""

    datagrams: int = 0  # UDP datagrams handed to the receiver
    ssrc_mappings: int = 0  # SPEAKING / CLIENT_CONNECT announcements applied
    user_disconnects: int = 0  # CLIENT_DISCONNECT events
    transport_keys: int = 0  # SESSION_DESCRIPTIONs applied (first connect + every re-identify)
    dave_updates: int = 0  # times the receiver was given the (re)keyed davey session
    resumes: int = 0  # RESUMED acknowledgements (4015 recovered without a new session)
    polls: int = 0
    poll_errors: int = 0


class _WakingSocket(socket.socket):
    """A UDP socket whose close() first wakes any thread blocked in select() on it.

    discord.py's socket reader thread sits in ``select([socket], timeout=30)`` whenever it
    has listeners, which for a receiving client is always. Closing a file descriptor does
    not wake a select() on it (Linux), so after a reconnect that replaces the socket the
    reader stays blind for up to 30 s: it misses the new socket's IP-discovery reply and
    the reconnect times out. shutdown() does wake it (the recv that follows fails, which
    discord.py ignores), and by then discord.py has paused the reader, so it waits for the
    new socket.
    """

    def close(self) -> None:
        try:
            self.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected, or already shut down
        super().close()


class _ReceivingConnectionState(VoiceConnectionState):
    """discord.py's connection state, with a working resume after close code 4015.

    In 2.7.1 the 4015 branch calls ``_connect(resume=True)``, which first re-sends the
    main-gateway voice state and waits for *both* VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE
    while the state is still ``connected`` (so the wait can never finish), and then waits
    for a SESSION_DESCRIPTION that Discord does not send after RESUMED. The resume then
    times out and discord.py disconnects for good. Here a resume is what Discord documents:
    a new websocket to the same endpoint, RESUME, wait for RESUMED; keys, SSRC, UDP socket
    and DAVE state stay. If that fails we fall back to discord.py's own full reconnect.
    """

    def _create_socket(self) -> None:
        # Same as discord.py 2.7.1's, with a socket that wakes the reader when closed.
        self.socket = _WakingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self._socket_reader.resume()

    async def _connect(self, reconnect: bool, timeout: float, self_deaf: bool, self_mute: bool, resume: bool) -> None:
        if resume and self.secret_key is not discord.utils.MISSING and self.endpoint and self.ip:
            try:
                await asyncio.wait_for(self._resume_websocket(), timeout=min(timeout, 10.0))
                if not self._runner:
                    self._runner = self.voice_client.loop.create_task(
                        self._poll_voice_ws(reconnect), name="Voice websocket poller"
                    )
                return
            except (TimeoutError, discord.ConnectionClosed, OSError) as exc:
                log.info("voice resume failed (%r); reconnecting with a new session", exc)
                await self.disconnect(cleanup=False)
        await super()._connect(reconnect, timeout, self_deaf, self_mute, False)

    async def _resume_websocket(self) -> None:
        resumed = self.voice_client.loop.create_future()
        client = self.voice_client
        if isinstance(client, ReceivingVoiceClient):
            client._resumed_waiter = resumed
        try:
            self.ws = await self._connect_websocket(True)
            # The old websocket's secret_key is what the resumed session still uses.
            self.ws.secret_key = self.secret_key
            while not resumed.done():
                await self.ws.poll_event()
            self.state = ConnectionFlowState.connected
        finally:
            if isinstance(client, ReceivingVoiceClient):
                client._resumed_waiter = None


class ReceivingVoiceClient(discord.VoiceClient):
    """``await channel.connect(cls=ReceivingVoiceClient)``, then ``vc.listen(sink)``.

    The sink runs on the event loop thread, every ~20 ms, with (user_id, PcmFrame) in
    48 kHz stereo int16 and ``start`` in seconds of call time; it must not block.
    """

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        self._receiver: AudioReceiver | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._listening = False
        self._counters = VoiceClientCounters()
        self._datagrams = 0  # written only by discord.py's socket reader thread
        self._resumed_waiter: asyncio.Future[None] | None = None
        # Kept even while not listening: SPEAKING for people already talking arrives once,
        # right after the handshake, possibly before listen() is called.
        self._ssrc_users: dict[int, int] = {}
        super().__init__(client, channel)

    def create_connection_state(self) -> VoiceConnectionState:
        return _ReceivingConnectionState(self, hook=self._ws_hook)

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
        self._connection.add_socket_listener(self._on_datagram)
        self._poll_task = self.loop.create_task(self._poll_loop(), name="voice receive poller")

    def stop_listening(self) -> None:
        """Stop receiving; audio still buffered is released to the sink first."""
        if not self._listening:
            return
        self._listening = False
        self._connection.remove_socket_listener(self._on_datagram)
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
        return replace(self._counters, datagrams=self._datagrams)

    def receive_stats(self) -> dict[int, ReceiveStats]:
        return {} if self._receiver is None else self._receiver.stats()

    def cleanup(self) -> None:
        # discord.py calls this when the connection is finished for good (not on reconnects).
        self.stop_listening()
        super().cleanup()

    # discord.py callbacks ---------------------------------------------------------------

    def _on_datagram(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is None or not self._listening or not data:
            return
        self._datagrams += 1
        receiver.feed(data, time.monotonic())

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
        if op == DiscordVoiceWebSocket.SESSION_DESCRIPTION:
            self._bump(transport_keys=1)
            self._apply_session()
        elif op in (DiscordVoiceWebSocket.DAVE_EXECUTE_TRANSITION, DiscordVoiceWebSocket.DAVE_PREPARE_EPOCH):
            self._apply_dave()
        elif op == DiscordVoiceWebSocket.DAVE_PREPARE_TRANSITION and d.get("transition_id") == 0:
            self._apply_dave()  # transition 0 executes immediately
        elif op == DiscordVoiceWebSocket.RESUMED:
            self._bump(resumes=1)
            if self._resumed_waiter is not None and not self._resumed_waiter.done():
                self._resumed_waiter.set_result(None)
        elif op == DiscordVoiceWebSocket.SPEAKING:
            self._map(d.get("user_id"), d.get("ssrc"))
        elif op == DiscordVoiceWebSocket.CLIENT_CONNECT:
            self._map(d.get("user_id"), d.get("audio_ssrc"))
        elif op == DiscordVoiceWebSocket.CLIENT_DISCONNECT:
            user_id = d.get("user_id")
            if user_id is not None:
                self._bump(user_disconnects=1)
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
        receiver, state = self._receiver, self._connection
        if receiver is None:
            return
        session = state.dave_session if state.dave_protocol_version > 0 else None
        receiver.set_dave_session(session)
        self._bump(dave_updates=1)
