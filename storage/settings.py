"""Bot settings: per guild (consent mode, live transcript, manager role), per user (hints) and
per-guild consent choices (/optin, /optout). Short synchronous transactions; the Discord side
calls them through ``asyncio.to_thread``.

Discord ids are stored as text (snowflakes exceed what some JSON consumers hold exactly) and
handed back as ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.db import Database, rowcount
from storage.models import (
    CONSENT_CHOICES,
    CONSENT_MODES,
    GuildConsent,
    GuildSettings,
    Participant,
    UserSettings,
    utcnow,
)
from storage.vocab import ConsentChoice, ConsentMode


@dataclass(frozen=True)
class GuildSettingsInfo:
    guild_id: int
    consent_mode: ConsentMode
    live_transcript: bool
    manager_role_id: int | None
    transcript_channel_id: int | None


@dataclass(frozen=True)
class Consents:
    """Who said /optin and who said /optout in one guild."""

    opted_in: frozenset[int]
    opted_out: frozenset[int]


_UNSET = object()
Row = TypeVar("Row", GuildSettings, UserSettings, GuildConsent)


def _row(s: Session, model: type[Row], **key: str) -> Row:
    """The settings row with this primary key, added if there is none yet; stamped as
    updated now either way."""
    row = s.get(model, key)
    if row is None:
        row = model(**key)
        s.add(row)
    row.updated_at = utcnow()
    return row


def guild_settings(
    db: Database, guild_id: int, *, default_mode: str = ConsentMode.NOTICE, default_live: bool = False
) -> GuildSettingsInfo:
    """The guild's settings, with the configured defaults where it has not chosen
    (``default_mode``: a ``ConsentMode`` value, e.g. ``[discord] consent_mode``)."""
    with db.session() as s:
        row = s.get(GuildSettings, str(guild_id))
    if row is None:
        return GuildSettingsInfo(guild_id, ConsentMode(default_mode), default_live, None, None)
    return GuildSettingsInfo(
        guild_id,
        ConsentMode(row.consent_mode or default_mode),
        default_live if row.live_transcript is None else row.live_transcript,
        None if row.manager_role_id is None else int(row.manager_role_id),
        None if row.transcript_channel_id is None else int(row.transcript_channel_id),
    )


def update_guild_settings(
    db: Database,
    guild_id: int,
    *,
    consent_mode: object = _UNSET,
    live_transcript: object = _UNSET,
    manager_role_id: object = _UNSET,
    transcript_channel_id: object = _UNSET,
) -> None:
    """Change the named settings; ``None`` for a role or channel clears it."""
    if consent_mode is not _UNSET and consent_mode not in CONSENT_MODES:
        raise ValueError(f"consent_mode must be one of {CONSENT_MODES}, not {consent_mode!r}")
    with db.write_session() as s, s.begin():
        row = _row(s, GuildSettings, guild_id=str(guild_id))
        if consent_mode is not _UNSET:
            row.consent_mode = consent_mode  # type: ignore[assignment]
        if live_transcript is not _UNSET:
            row.live_transcript = bool(live_transcript)
        if manager_role_id is not _UNSET:
            row.manager_role_id = None if manager_role_id is None else str(manager_role_id)
        if transcript_channel_id is not _UNSET:
            row.transcript_channel_id = None if transcript_channel_id is None else str(transcript_channel_id)


def hints_enabled(db: Database, user_id: int) -> bool:
    with db.session() as s:
        row = s.get(UserSettings, str(user_id))
    return bool(row and row.hints)


def set_hints(db: Database, user_id: int, on: bool) -> None:
    with db.write_session() as s, s.begin():
        _row(s, UserSettings, user_id=str(user_id)).hints = on


def hint_recipients(db: Database, user_ids: set[int] | frozenset[int]) -> set[int]:
    """Those of ``user_ids`` who opted in to hints."""
    if not user_ids:
        return set()
    with db.session() as s:
        rows = s.scalars(
            select(UserSettings.user_id).where(
                UserSettings.user_id.in_([str(u) for u in user_ids]), UserSettings.hints.is_(True)
            )
        )
        return {int(u) for u in rows}


def set_summary_dm(db: Database, user_id: int, on: bool) -> None:
    with db.write_session() as s, s.begin():
        _row(s, UserSettings, user_id=str(user_id)).summary_dm = on


def summary_dm_recipients(db: Database, session_id: int) -> set[int]:
    """The Discord users of this call (a participant row carries their id: they were
    processed) who asked for its summary by DM (``/summary on``)."""
    with db.session() as s:
        rows = s.scalars(
            select(Participant.user_id)
            .join(UserSettings, UserSettings.user_id == Participant.user_id)
            .where(Participant.session_id == session_id, UserSettings.summary_dm.is_(True))
        )
        return {int(u) for u in rows if u is not None and u.isdigit()}


def set_consent(db: Database, guild_id: int, user_id: int, choice: ConsentChoice) -> None:
    if choice not in CONSENT_CHOICES:
        raise ValueError(f"choice must be one of {CONSENT_CHOICES}, not {choice!r}")
    with db.write_session() as s, s.begin():
        _row(s, GuildConsent, guild_id=str(guild_id), user_id=str(user_id)).choice = choice


def consents(db: Database, guild_id: int) -> Consents:
    with db.session() as s:
        rows = s.execute(
            select(GuildConsent.user_id, GuildConsent.choice).where(GuildConsent.guild_id == str(guild_id))
        ).all()
    return Consents(
        frozenset(int(u) for u, c in rows if c == ConsentChoice.OPT_IN),
        frozenset(int(u) for u, c in rows if c == ConsentChoice.OPT_OUT),
    )


def forget_user_settings(db: Database, user_id: int, *, keep_opt_outs: bool = True) -> int:
    """Delete the user's settings and consent choices; returns rows deleted.

    Opt-outs are kept by default: they are the user's standing instruction not to be
    processed, and deleting them would resume processing in notice-mode guilds unasked.
    """
    with db.write_session() as s, s.begin():
        n = rowcount(s.execute(delete(UserSettings).where(UserSettings.user_id == str(user_id))))
        gone = delete(GuildConsent).where(GuildConsent.user_id == str(user_id))
        if keep_opt_outs:
            gone = gone.where(GuildConsent.choice != ConsentChoice.OPT_OUT)
        n += rowcount(s.execute(gone))
    return n
