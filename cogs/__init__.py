"""Discord slash-command groups (discord.py cogs), one module per group.

Reserved for the bot: /join, /leave, /enroll, /voiceprint, /hints, /privacy, /optout,
/optin, /forget and /log. The speech pipeline they drive lives in ``bot.pipeline``.
"""
