"""discord.py 2.7.1's voice connection state, with the fixes a receiving client needs.

* A resume after close code 4015 that works (see :class:`ReceivingConnectionState`).
* A UDP socket whose close wakes discord.py's reader thread (:class:`WakingSocket`).
* Every voice websocket is a :class:`bot.voice.voice_ws.ReceivingVoiceWebSocket`
  (redelivered messages dropped, MLS proposals checked against the call's members), and a
  resumed one carries on the message numbering of the one it replaces.

The voice client is reached duck-typed (``_resumed_waiter``, ``_configure_ws``) so this
module does not import it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import discord
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from bot.voice.voice_ws import ReceivingVoiceWebSocket

log = logging.getLogger(__name__)


class WakingSocket(socket.socket):
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


class ReceivingConnectionState(VoiceConnectionState):
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
        self.socket = WakingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self._socket_reader.resume()

    async def _connect_websocket(self, resume: bool) -> DiscordVoiceWebSocket:
        # discord.py 2.7.1's, with our websocket class.
        previous: Any = self.ws
        seq_ack = -1 if previous is discord.utils.MISSING else previous.seq_ack
        ws = await ReceivingVoiceWebSocket.from_connection_state(self, resume=resume, hook=self.hook, seq_ack=seq_ack)
        if resume:
            ws.continue_from(previous)
        configure = getattr(self.voice_client, "_configure_ws", None)
        if configure is not None:
            configure(ws)
        self.state = ConnectionFlowState.websocket_connected
        return ws

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
        client: Any = self.voice_client
        client._resumed_waiter = resumed
        previous: Any = self.ws
        keep_alive = getattr(previous, "_keep_alive", None)
        if keep_alive is not None:
            # The closed socket's heartbeat thread would go on running (and, once the
            # event loop is gone, fail): discord.py only stops it in close().
            keep_alive.stop()
        try:
            self.ws = await self._connect_websocket(True)
            # The old websocket's secret_key is what the resumed session still uses.
            self.ws.secret_key = self.secret_key
            while not resumed.done():
                await self.ws.poll_event()
            self.state = ConnectionFlowState.connected
        finally:
            client._resumed_waiter = None
