"""One module per ``python -m bot`` command; see ``bot.cli``."""
