"""Storage: calls, transcripts, voiceprints and suggestions in SQLite (or any SQLAlchemy DB).

The pipeline writes through ``CallRecorder`` with the plain records in ``storage.records``;
the CLI and Discord slash commands read through ``storage.queries``, ``storage.search`` and
``storage.export`` with a ``Viewer`` (``storage.access``) deciding what each may see, and
delete through ``storage.deletion`` and ``storage.retention``.
"""

from storage.access import Viewer
from storage.db import Database, open_database
from storage.models import (
    Base,
    CallSession,
    Participant,
    Suggestion,
    Utterance,
    Voiceprint,
)
from storage.queries import (
    ParticipantInfo,
    SessionDetail,
    SessionSummary,
    SuggestionInfo,
    UtteranceInfo,
    dump_session_json,
    get_session,
    list_sessions,
    session_to_json,
)
from storage.recorder import CallRecorder
from storage.records import NewSession, SuggestionRecord, UtteranceRecord

__all__ = [
    "Base",
    "CallRecorder",
    "CallSession",
    "Database",
    "NewSession",
    "Participant",
    "ParticipantInfo",
    "SessionDetail",
    "SessionSummary",
    "Suggestion",
    "SuggestionInfo",
    "SuggestionRecord",
    "Utterance",
    "UtteranceInfo",
    "UtteranceRecord",
    "Viewer",
    "Voiceprint",
    "dump_session_json",
    "get_session",
    "list_sessions",
    "open_database",
    "session_to_json",
]
