"""Storage: calls, transcripts, voiceprints and suggestions in SQLite (or any SQLAlchemy DB).

The pipeline writes through ``CallRecorder`` with the plain records in ``storage.records``;
the CLI and Discord slash commands read through ``storage.queries``, ``storage.search`` and
``storage.export`` with a ``Viewer`` (``storage.access``) deciding what each may see, and
delete through ``storage.deletion`` and ``storage.retention``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use (PEP 562): `storage.errors`, `storage.vocab` and `storage.plaintext` are
# imported by the command line's start-up, which must not pay for SQLAlchemy and the models.
_EXPORTS = {
    "Base": "storage.models",
    "CallRecorder": "storage.recorder",
    "CallSession": "storage.models",
    "Database": "storage.db",
    "NewSession": "storage.records",
    "Participant": "storage.models",
    "ParticipantInfo": "storage.queries",
    "SessionDetail": "storage.queries",
    "SessionSummary": "storage.queries",
    "Suggestion": "storage.models",
    "SuggestionInfo": "storage.queries",
    "SuggestionRecord": "storage.records",
    "Utterance": "storage.models",
    "UtteranceInfo": "storage.queries",
    "UtteranceRecord": "storage.records",
    "Viewer": "storage.access",
    "Voiceprint": "storage.models",
    "dump_session_json": "storage.queries",
    "get_session": "storage.queries",
    "list_sessions": "storage.queries",
    "open_database": "storage.db",
    "session_to_json": "storage.queries",
}


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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
