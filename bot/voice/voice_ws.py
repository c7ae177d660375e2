"""discord.py 2.7.1's voice websocket with two fixes the receive path depends on.

* **Redelivery.** Voice gateway v8 numbers its messages and, after a RESUME, re-sends what
  it thinks the client missed ("Buffered Resume" in Discord's voice docs); a message can
  arrive twice. discord.py handles every copy: a second SESSION_DESCRIPTION re-creates the
  DAVE session, a second welcome or commit fails and triggers invalid-commit recovery, a
  second CLIENT_DISCONNECT forgets someone who came back. Messages whose sequence number
  is not newer than the last one handled are dropped here, on a resumed socket too (the
  last number travels with the resume).
* **Expected members.** MLS_PROPOSALS (27) go to davey with the user ids the call is known
  to have (bot.voice.members), so a proposal to add anyone else is refused, as the DAVE
  whitepaper requires. discord.py passes none, and lets davey's exception escape.
* **Upgrade of a transport-only call.** discord.py ignores DAVE_PREPARE_EPOCH until it has a
  DAVE session, which it only creates from a SESSION_DESCRIPTION with DAVE; here epoch 1
  creates it, as the whitepaper's upgrade requires.

Everything else is discord.py's own handling.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from discord.gateway import DiscordVoiceWebSocket

if TYPE_CHECKING:
    from discord.voice_state import VoiceConnectionState

log = logging.getLogger(__name__)

_SEQ_MOD = 1 << 16  # binary messages carry the sequence number in 16 bits


class ReceivingVoiceWebSocket(DiscordVoiceWebSocket):
    # Set by the voice client after creation; class defaults keep discord.py's own paths working.
    last_seq: int | None = None
    redelivered: int = 0
    on_refused_proposal: Callable[[Exception], None] | None = None
    expected_members: Callable[[], list[int]] | None = None

    def continue_from(self, previous: Any) -> None:
        """A resumed session: messages up to the previous socket's last one are old."""
        if isinstance(previous, ReceivingVoiceWebSocket):
            self.last_seq = previous.last_seq

    def _is_new(self, seq: Any) -> bool:
        if not isinstance(seq, int):
            return True  # unnumbered (HELLO, HEARTBEAT_ACK ...): never redelivered
        seq &= _SEQ_MOD - 1
        last = self.last_seq
        if last is not None and not 0 < (seq - last) % _SEQ_MOD < _SEQ_MOD // 2:
            self.redelivered += 1
            return False
        self.last_seq = seq
        return True

    async def received_message(self, msg: dict[str, Any]) -> None:
        if not self._is_new(msg.get("seq")):
            log.debug("voice gateway redelivered op %s (seq %s): already handled", msg.get("op"), msg.get("seq"))
            return
        if msg.get("op") == self.DAVE_PREPARE_EPOCH and self._connection.dave_session is None:
            await self._upgrade_without_session(msg)
            return
        await super().received_message(msg)

    async def _upgrade_without_session(self, msg: dict[str, Any]) -> None:
        # discord.py handles the DAVE opcodes only once it has a session, and creates one
        # only for a SESSION_DESCRIPTION with DAVE: a call that began transport-only could
        # never upgrade. PREPARE_EPOCH with epoch 1 is where the whitepaper creates the group.
        d = msg.get("d") or {}
        state = self._connection
        self.seq_ack = msg.get("seq", self.seq_ack)
        version = int(d.get("protocol_version") or 0)
        if d.get("epoch") == 1 and version > 0:
            state.dave_protocol_version = version
            await state.reinit_dave_session()  # a session and our key package
        await self._hook(self, msg)

    async def received_binary_message(self, msg: bytes) -> None:
        if len(msg) < 3:
            return
        seq = struct.unpack_from(">H", msg, 0)[0]
        if not self._is_new(seq):
            log.debug("voice gateway redelivered binary op %d (seq %d): already handled", msg[2], seq)
            return
        if msg[2] == self.MLS_PROPOSALS:
            self.seq_ack = seq
            await self._proposals(msg)
            return
        await super().received_binary_message(msg)

    async def _proposals(self, msg: bytes) -> None:
        import davey

        state: VoiceConnectionState = self._connection
        session = state.dave_session
        if session is None or len(msg) < 4:
            return
        optype = davey.ProposalsOperationType.append if msg[3] == 0 else davey.ProposalsOperationType.revoke
        expected = self.expected_members() if self.expected_members is not None else None
        try:
            result = session.process_proposals(optype, msg[4:], expected)
        except Exception as exc:
            # An add for someone not in the call (or proposals davey cannot use): refused,
            # no commit from us. The gateway's commit, if it has one, then fails to apply
            # and discord.py's invalid-commit recovery rejoins us.
            log.warning("refused MLS proposals from the voice gateway: %s (expected members: %s)", exc, expected)
            if self.on_refused_proposal is not None:
                self.on_refused_proposal(exc)
            return
        if isinstance(result, davey.CommitWelcome):
            await self.send_binary(
                self.MLS_COMMIT_WELCOME, result.commit + result.welcome if result.welcome else result.commit
            )
