"""S-Talk: a voice-call companion bot.

The speech pipeline (``bot.pipeline``) is free of Discord types so that the bot,
``replay`` and the tests all drive the same code.
"""

__version__ = "0.1.0"
