"""Who may be added to the call's MLS group: the users Discord says are in the call.

The DAVE whitepaper (protocol.md, "Member Add"): "All group members must refuse to process
an add proposal for a user that they do not expect to be in the media session (e.g. the
user ID in the add proposal was not in a previously received clients_connect opcode (11)
or [...] was in a previously received client_disconnect opcode (13) and has not
reconnected)". discord.py 2.7.1 passes davey no expected ids at all, so any proposal is
committed. The voice gateway's CLIENTS_CONNECT/CLIENT_DISCONNECT are one source; the main
gateway's voice states for the channel (who is in it) are the other, and either suffices:
someone already in the channel when the bot joined is in its voice states, and a newcomer's
CLIENTS_CONNECT precedes the proposal that adds them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class CallMembers:
    def __init__(self, self_id: int, voice_states: Callable[[], Iterable[int]] = lambda: ()) -> None:
        self.self_id = self_id
        self._voice_states = voice_states
        self._lock = threading.Lock()
        self._connected: set[int] = set()
        self._left: set[int] = set()

    def connected(self, user_ids: Iterable[int]) -> None:
        """CLIENTS_CONNECT (11)."""
        with self._lock:
            for uid in user_ids:
                self._connected.add(uid)
                self._left.discard(uid)

    def disconnected(self, user_id: int) -> None:
        """CLIENT_DISCONNECT (13)."""
        with self._lock:
            self._connected.discard(user_id)
            self._left.add(user_id)

    def expected(self) -> list[int]:
        """The ids davey may accept in add proposals, ourselves included (a re-added key
        package of our own). Someone who left is expected again only once the voice
        gateway says they reconnected, even if a stale voice state still lists them."""
        try:
            in_channel = set(self._voice_states())
        except Exception:
            in_channel = set()  # the cache is best effort; the gateway's word still counts
        with self._lock:
            ids = (self._connected | (in_channel - self._left)) | {self.self_id}
        return sorted(ids)
