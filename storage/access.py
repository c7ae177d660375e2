"""Who may see and delete which calls: one rule, applied inside every query.

The rule is enforced in SQL (a WHERE clause built here) rather than by filtering results in
Python, so a count, a page, a search hit or an export can never include a row the viewer may
not see, and pagination boundaries are computed over the visible rows only.

Hint DMs are private to their recipient ("Only you see this"): ``own_hints`` gives a member
reading a call (an export, a JSON dump) only the hints that were sent to them.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, exists, false, select, true
from sqlalchemy.orm import aliased

from storage.models import CallSession, Participant


class _Hint(Protocol):
    """A stored hint as the query layer gives it (a dataclass naming its recipients)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def recipients(self) -> list[str]: ...


H = TypeVar("H", bound=_Hint)


@dataclass(frozen=True)
class Viewer:
    """Who is asking.

    * ``operator``: the person running the command line on the bot's own database: sees and
      may delete everything, every guild included.
    * a guild administrator (``is_admin`` with ``guild_id``): every call of that guild, none of
      any other guild.
    * a member (``user_id`` with ``guild_id``): the calls of that guild they attended, i.e.
      where a participant row carries their user id.

    A viewer with no guild (a direct message) and no operator flag sees nothing: calls always
    belong to a guild, and which guild is being asked about decides what is visible.
    """

    user_id: str | None = None
    guild_id: str | None = None
    is_admin: bool = False
    operator: bool = False

    @classmethod
    def cli_operator(cls) -> Viewer:
        return cls(operator=True)

    @classmethod
    def member(cls, user_id: str | int, guild_id: str | int, *, is_admin: bool = False) -> Viewer:
        """A Discord member asking in a guild (snowflakes accepted as int or str)."""
        return cls(user_id=str(user_id), guild_id=str(guild_id), is_admin=is_admin)


def attended(user_id: str) -> ColumnElement[bool]:
    """The session has a participant row carrying ``user_id``."""
    # Aliased and correlated to the session alone: queries that join participants
    # themselves (search) must not have theirs captured by this subquery.
    p = aliased(Participant)
    return exists(select(p.id).where(p.session_id == CallSession.id, p.user_id == user_id).correlate(CallSession))


def visible(viewer: Viewer) -> ColumnElement[bool]:
    """WHERE clause on ``CallSession``: the calls ``viewer`` may read."""
    if viewer.operator:
        return true()
    if viewer.guild_id is None:
        return false()
    in_guild = CallSession.guild_id == viewer.guild_id
    if viewer.is_admin:
        return in_guild
    if viewer.user_id is None:
        return false()
    return and_(in_guild, attended(viewer.user_id))


def own_hints(viewer: Viewer | None, participants: list[tuple[str, str | None]], suggestions: list[H]) -> list[H]:
    """The hints of a call ``viewer`` may read, and to whom: a hint DM says "Only you see
    this", so a member (administrators too) sees only the hints sent to them, with only
    themselves as recipient; the operator (or ``viewer`` None) sees them all.

    ``participants`` are the call's (name, user id) pairs; suggestions record their recipients
    by name, so the viewer's names in this call are those of the participant rows carrying
    their user id. (A filter over one call already found visible, hence not SQL.)
    """
    if viewer is None or viewer.operator:
        return list(suggestions)
    mine = {name for name, uid in participants if viewer.user_id is not None and uid == viewer.user_id}
    out = []
    for g in suggestions:
        to = [r for r in g.recipients if r in mine]
        if to:
            out.append(replace(g, recipients=to))
    return out


def deletable(viewer: Viewer) -> ColumnElement[bool]:
    """WHERE clause on ``CallSession``: the calls ``viewer`` may delete for everyone.

    The operator, the guild's administrators, and whoever started the call (``started_by``)
    if they still may see it. An ordinary participant may not delete a call for the others;
    ``storage.deletion.forget_user`` removes their own part instead.
    """
    if viewer.operator:
        return true()
    if viewer.guild_id is None:
        return false()
    if viewer.is_admin:
        return CallSession.guild_id == viewer.guild_id
    if viewer.user_id is None:
        return false()
    return and_(visible(viewer), CallSession.started_by == viewer.user_id)
