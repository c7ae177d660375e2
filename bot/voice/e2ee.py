"""Which DAVE protocol version the call's media uses, followed through the gateway's transitions.

discord.py tracks the protocol version for *sending* and changes it early (DAVE_PREPARE_EPOCH
sets the new version before anyone sends under it), so the receiver follows the media
itself, from the opcodes of the DAVE whitepaper (discord/dave-protocol protocol.md,
"Protocol Version Changes", "Upgrade from / Downgrade to Transport-Only Encryption"):

* SESSION_DESCRIPTION (4): the call's version as we join: 0 is transport-only (plain Opus
  passes), 1 is E2EE (only decrypted frames pass; until the MLS welcome nothing decrypts).
* PREPARE_EPOCH (24) with epoch 1 while transport-only: an upgrade. Senders go on sending
  plain Opus until the transition executes, so plain passes.
* PREPARE_TRANSITION (21) to version 0: a downgrade. Plain passes from now on.
* EXECUTE_TRANSITION (22), or 21 with transition id 0 (executed at once): the new version
  takes effect. After an upgrade, plain frames still in flight pass for the transition
  window; after a downgrade, the old keys decrypt frames still in flight for that window.

The whitepaper gives the window as "up to ten seconds"; libdave and davey use 10 s.
"""

from __future__ import annotations

import enum
import math
from typing import Any

from bot.voice.dave import E2eePolicy

TRANSITION_WINDOW = 10.0


class MediaProtocol(enum.StrEnum):
    TRANSPORT_ONLY = "transport_only"
    E2EE = "e2ee"
    UPGRADING = "upgrading"  # transport-only media, an E2EE group being formed
    DOWNGRADING = "downgrading"  # E2EE media, a downgrade announced


class E2eeTracker:
    """Feed it the gateway's DAVE opcodes (after discord.py handled them); read ``policy``."""

    def __init__(self, *, window: float = TRANSITION_WINDOW) -> None:
        self.window = window
        self.state = MediaProtocol.TRANSPORT_ONLY
        self.session: Any | None = None
        self._plain_until = math.inf
        self._keys_until = -math.inf
        self._pending: dict[int, int] = {}  # transition id -> protocol version (21)
        self.transitions = 0  # executed transitions that changed the media's protocol

    @property
    def policy(self) -> E2eePolicy:
        return E2eePolicy(self.session, self._plain_until, self._keys_until)

    def _media_version(self) -> int:
        return 1 if self.state in (MediaProtocol.E2EE, MediaProtocol.DOWNGRADING) else 0

    def session_description(self, version: int, session: Any | None) -> None:
        """A new voice session (first connect or a fresh identify): the call's current version."""
        self.session = session
        self._pending.clear()
        if version > 0:
            self.state = MediaProtocol.E2EE
            self._plain_until, self._keys_until = -math.inf, math.inf
        else:
            self.state = MediaProtocol.TRANSPORT_ONLY
            self._plain_until, self._keys_until = math.inf, -math.inf

    def prepare_epoch(self, epoch: int, version: int, session: Any | None) -> None:
        self.session = session
        if epoch != 1:
            return  # the group is kept: nothing changes for media until an execute
        if version > 0 and self._media_version() == 0:
            self.state = MediaProtocol.UPGRADING
            # plain still passes (senders have no group yet); the new group's frames decrypt
            self._plain_until, self._keys_until = math.inf, math.inf
        # An E2EE call re-creating its group (sole member reset, invalid commit recovery):
        # frames under the old group no longer decrypt and are dropped; plain stays refused.

    def prepare_transition(self, transition_id: int, version: int, now: float) -> None:
        self._pending[transition_id] = version
        if version == 0 and self._media_version() > 0:
            self.state = MediaProtocol.DOWNGRADING
            self._plain_until = math.inf
        if transition_id == 0:
            self.execute_transition(transition_id, now)

    def execute_transition(self, transition_id: int, now: float, *, version: int | None = None) -> None:
        """``version``: the protocol version now in use, where known (discord.py's, after it
        executed); transitions announced by commit or welcome keep the version."""
        new = self._pending.pop(transition_id, version)
        if new is None:
            return
        before = self._media_version()
        if new > 0 and before == 0:
            # plain frames sent just before the switch are still on their way
            self._plain_until = now + self.window
            self._keys_until = math.inf
            self.state = MediaProtocol.E2EE
            self.transitions += 1
        elif new == 0 and before > 0:
            self.state = MediaProtocol.TRANSPORT_ONLY
            self._plain_until = math.inf
            self._keys_until = now + self.window
            self.transitions += 1
