"""Storage: calls, transcripts, voiceprints and suggestions in SQLite (or any SQLAlchemy DB).

The pipeline writes through ``CallRecorder`` with the plain records in ``storage.records``;
the CLI and, later, Discord slash commands read through ``storage.queries``.
"""

from storage.db import Database, open_database
from storage.models import (
    Base,
    CallSession,
    Participant,
    Suggestion,
    Utterance,
    Voiceprint,
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
    "Suggestion",
    "SuggestionRecord",
    "Utterance",
    "UtteranceRecord",
    "Voiceprint",
    "open_database",
]
