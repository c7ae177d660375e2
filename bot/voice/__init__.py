"""Discord voice receive: UDP datagrams to each user's timed 48 kHz PCM (see receiver.py)."""

from bot.voice.receiver import AudioReceiver, ReceiverTotals
from bot.voice.stats import ReceiveStats

__all__ = ["AudioReceiver", "ReceiveStats", "ReceiverTotals"]
