"""The words S-Talk stores and shows: one ``StrEnum`` per vocabulary, shared by storage and the bot.

Each member's value is the exact string in the database (CHECK constraints, migrations), in the
JSON export and in configuration files, so a member compares equal to that string and formats
as it: ``SessionStatus.ACTIVE == "active"`` and ``f"{SessionStatus.ACTIVE}" == "active"``.
Storage is the lowest layer, so the vocabularies live here and everything above imports them.
"""

from __future__ import annotations

from enum import StrEnum


class SessionSource(StrEnum):
    """Where a call came from."""

    REPLAY = "replay"  # `python -m bot replay`: recorded audio files
    DISCORD = "discord"  # a live Discord voice channel


class SessionStatus(StrEnum):
    """A call's state in the database: active while recorded, then one of the final three."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"  # kept, with its error, never silently half-stored
    INTERRUPTED = "interrupted"  # a stop signal, a shutdown, or a crash closed it

    @property
    def final(self) -> bool:
        return self is not SessionStatus.ACTIVE


FINAL_STATUSES = tuple(s for s in SessionStatus if s.final)


class Verification(StrEnum):
    """Whether an utterance's voice matched its speaker's voiceprint (None: not checked)."""

    VERIFIED = "verified"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"  # too short or too unlike anyone to judge


class ConsentMode(StrEnum):
    """A guild's rule for who is processed."""

    NOTICE = "notice"  # everyone, unless they /optout
    OPT_IN = "opt_in"  # only those who said /optin


class ConsentChoice(StrEnum):
    """A member's own /optin or /optout in one guild."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class ExportFormat(StrEnum):
    """What ``logs export --format`` and ``/log export`` write (the file name's extension)."""

    JSON = "json"
    TXT = "txt"
    MD = "md"
    SRT = "srt"
    VTT = "vtt"


class PointKind(StrEnum):
    """What one line of a call summary is."""

    TOPIC = "topic"  # what was talked about
    DECISION = "decision"  # something agreed on
    TODO = "todo"  # something someone will do
    QUESTION = "question"  # a question left open


def values(vocab: type[StrEnum]) -> tuple[str, ...]:
    """A vocabulary's stored strings, plain ``str`` (for SQL text and error messages)."""
    return tuple(m.value for m in vocab)


def noun(n: int, singular: str, plural_form: str | None = None) -> str:
    """The noun agreeing with ``n``: ``utterance`` for 1, ``utterances`` for 0 or 2
    (``plural_form``: where it is not ``singular + "s"``)."""
    return singular if n == 1 else plural_form or singular + "s"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``1 utterance``, ``2 utterances``, ``0 utterances``: a count with its noun agreeing."""
    return f"{n} {noun(n, singular, plural_form)}"
