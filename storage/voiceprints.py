"""Reading and writing enrolled voiceprints (the ``voiceprints`` table).

Each write is one transaction: re-enrolling replaces the old voiceprint whole or not at
all. Embeddings are stored as little-endian float32 with the model's identity beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from storage.db import Database, rowcount
from storage.models import Voiceprint, utcnow


@dataclass(frozen=True)
class VoiceprintData:
    name: str
    model_id: str
    model_name: str
    embedding: np.ndarray  # L2-normalised float32
    segments: int
    speech_seconds: float
    user_id: str | None = None
    scoring: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def dim(self) -> int:
        return int(self.embedding.shape[0])


def _data(row: Voiceprint) -> VoiceprintData:
    emb = np.frombuffer(row.embedding, dtype="<f4").astype(np.float32)
    return VoiceprintData(
        name=row.name,
        model_id=row.model_id,
        model_name=row.model_name,
        embedding=emb,
        segments=row.segments,
        speech_seconds=row.speech_seconds,
        user_id=row.user_id,
        scoring=dict(row.scoring or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def save_voiceprint(db: Database, vp: VoiceprintData) -> int:
    """Store ``vp`` under its name, replacing any earlier voiceprint of that name."""
    blob = np.asarray(vp.embedding, dtype="<f4").tobytes()
    with db.write_session() as s, s.begin():
        row = s.scalar(select(Voiceprint).where(Voiceprint.name == vp.name))
        now = utcnow()
        if row is None:
            row = Voiceprint(name=vp.name, created_at=now)
            s.add(row)
        row.user_id = vp.user_id
        row.model_id = vp.model_id
        row.model_name = vp.model_name
        row.dim = vp.dim
        row.embedding = blob
        row.segments = vp.segments
        row.speech_seconds = float(vp.speech_seconds)
        row.scoring = dict(vp.scoring)
        row.updated_at = now
        s.flush()
        return row.id


def get_voiceprint(db: Database, name: str) -> VoiceprintData | None:
    with db.session() as s:
        row = s.scalar(select(Voiceprint).where(Voiceprint.name == name))
        return _data(row) if row is not None else None


def get_voiceprint_by_user(db: Database, user_id: str) -> VoiceprintData | None:
    with db.session() as s:
        row = s.scalar(select(Voiceprint).where(Voiceprint.user_id == user_id).order_by(Voiceprint.updated_at.desc()))
        return _data(row) if row is not None else None


def list_voiceprints(db: Database, model_id: str | None = None) -> list[VoiceprintData]:
    """Every voiceprint (or only those of one model), by name."""
    query = select(Voiceprint).order_by(Voiceprint.name)
    if model_id is not None:
        query = query.where(Voiceprint.model_id == model_id)
    with db.session() as s:
        return [_data(r) for r in s.scalars(query)]


def delete_voiceprint(db: Database, name: str) -> bool:
    """Remove the voiceprint enrolled under ``name``; False if there was none."""
    with db.write_session() as s, s.begin():
        return rowcount(s.execute(delete(Voiceprint).where(Voiceprint.name == name))) > 0


def delete_user_voiceprints(db: Database, user_id: str) -> list[str]:
    """Remove every voiceprint of one Discord user (``/voiceprint delete``); the names they had."""
    with db.write_session() as s, s.begin():
        names = list(s.scalars(select(Voiceprint.name).where(Voiceprint.user_id == user_id)))
        if names:
            s.execute(delete(Voiceprint).where(Voiceprint.user_id == user_id))
        return names
