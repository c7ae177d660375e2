"""The voice server's half of DAVE's MLS layer: the external sender.

In DAVE the voice gateway is the MLS *external sender*: it publishes its signing key
(opcode 25) and injects Add/Remove proposals (opcode 27) that the group members commit.
davey only implements the member side, so the double builds those RFC 9420 structures
itself, from the published wire formats (RFC 9420 sections 2.1.2, 5.1.2, 6, 12.1 and the
DAVE whitepaper's opcode 25/27 layouts). Ciphersuite 2 (P-256/SHA-256) is what DAVE v1 uses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

_MLS10 = 1
_WIRE_PUBLIC_MESSAGE = 1
_SENDER_EXTERNAL = 2
_CONTENT_PROPOSAL = 2
_PROPOSAL_ADD = 1
_PROPOSAL_REMOVE = 3
_CREDENTIAL_BASIC = 1


def varint(n: int) -> bytes:
    """MLS variable-length size prefix (RFC 9420 2.1.2; QUIC varint limited to 30 bits)."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return struct.pack(">H", 0x4000 | n)
    if n < 1 << 30:
        return struct.pack(">I", 0x80000000 | n)
    raise ValueError("too long for an MLS vector")


def opaque(data: bytes) -> bytes:
    return varint(len(data)) + data


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    prefix = first >> 6
    if prefix == 0:
        return first, pos + 1
    if prefix == 1:
        return struct.unpack_from(">H", buf, pos)[0] & 0x3FFF, pos + 2
    if prefix == 2:
        return struct.unpack_from(">I", buf, pos)[0] & 0x3FFFFFFF, pos + 4
    raise ValueError("invalid MLS varint")


def group_id_for_channel(channel_id: int) -> bytes:
    # DAVE uses the voice channel's snowflake, big-endian, as the MLS group id.
    return struct.pack(">Q", channel_id)


@dataclass
class ExternalSender:
    """The voice server's MLS identity: a P-256 signing key with a basic credential."""

    identity: bytes = b"voice-double"
    _key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def package(self) -> bytes:
        """Opcode 25 payload: struct ExternalSender {signature_key<V>; Credential credential}."""
        return opaque(self.public_key) + struct.pack(">H", _CREDENTIAL_BASIC) + opaque(self.identity)

    def _sign_with_label(self, label: str, content: bytes) -> bytes:
        sign_content = opaque(b"MLS 1.0 " + label.encode()) + opaque(content)
        # MLS carries ECDSA signatures DER-encoded, which is what `sign` returns.
        return self._key.sign(sign_content, ec.ECDSA(hashes.SHA256()))

    def _proposal_message(self, group_id: bytes, epoch: int, proposal: bytes) -> bytes:
        framed_content = (
            opaque(group_id)
            + struct.pack(">Q", epoch)
            + struct.pack(">BI", _SENDER_EXTERNAL, 0)
            + opaque(b"")  # authenticated_data
            + bytes([_CONTENT_PROPOSAL])
            + proposal
        )
        # External senders sign without the group context and carry no membership tag.
        tbs = struct.pack(">HH", _MLS10, _WIRE_PUBLIC_MESSAGE) + framed_content
        signature = self._sign_with_label("FramedContentTBS", tbs)
        return struct.pack(">HH", _MLS10, _WIRE_PUBLIC_MESSAGE) + framed_content + opaque(signature)

    def add_proposal(self, group_id: bytes, epoch: int, key_package: bytes) -> bytes:
        """One MLSMessage carrying an external Add proposal for ``key_package`` (already serialized
        as an MLSMessage-less KeyPackage, the form davey's get_serialized_key_package returns)."""
        return self._proposal_message(group_id, epoch, struct.pack(">H", _PROPOSAL_ADD) + key_package)

    def remove_proposal(self, group_id: bytes, epoch: int, leaf_index: int) -> bytes:
        return self._proposal_message(group_id, epoch, struct.pack(">HI", _PROPOSAL_REMOVE, leaf_index))


def proposals_vector(messages: list[bytes]) -> bytes:
    """Opcode 27 append body after the operation-type byte: MLSMessage proposal_messages<V>."""
    return opaque(b"".join(messages))
