"""The Discord side of S-Talk: the bot, its per-guild live sessions, consent and the live transcript.

Discord types stay here and in ``cogs/``; the speech pipeline only sees user ids and PcmFrames.
"""
