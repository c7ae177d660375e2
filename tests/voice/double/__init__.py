"""A local test double of Discord's voice infrastructure for driving discord.py's real client."""

from .gateway import FakeDiscord, MainGatewayStandIn, VoiceRoute, fake_discord, restore_api_base, snowflake
from .server import Impairment, Member, StreamResult, VoiceServerDouble
from .speech import EncodedSpeech, encode, librispeech, load_speech
from .tls import TlsPair, make_tls_pair, tls_from_pem

__all__ = [
    "EncodedSpeech",
    "FakeDiscord",
    "Impairment",
    "MainGatewayStandIn",
    "Member",
    "StreamResult",
    "TlsPair",
    "VoiceRoute",
    "VoiceServerDouble",
    "encode",
    "fake_discord",
    "librispeech",
    "load_speech",
    "make_tls_pair",
    "restore_api_base",
    "snowflake",
    "tls_from_pem",
]
