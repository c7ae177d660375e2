"""/log list|show|summary|search|export|delete: reviewing the calls S-Talk stored, from Discord.

Everything goes through the log-review queries in ``storage`` with a ``Viewer`` built from the
invoker (a member sees the calls of this server they attended; administrators all of this
server's), so the access rule is the same SQL as the operator's command line uses. All
database work runs in worker threads; every reply is ephemeral and pings nobody.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discordbot.app import StalkBot
from bot.discordbot.kit import CommandRefused, ConfirmView, OwnerOnlyView, call_clock, escape, guild_member
from bot.discordbot.transcript import NAME_CHARS, TEXT_CHARS
from bot.summary.make import summary_for
from storage.access import Viewer
from storage.deletion import Deleted, delete_session, may_delete
from storage.export import (
    FORMATS,
    LEGEND,
    call_picture,
    export_session,
    labels,
    shape_lines,
    short_clock,
    summary_points,
    verdict_mark,
)
from storage.paging import Page, budget_bounds, clamp, make_page
from storage.plaintext import for_discord_plain
from storage.queries import (
    SessionDetail,
    SessionSummary,
    TranscriptPage,
    detail_shape,
    find_sessions,
    get_session,
    list_page,
    show_page,
)
from storage.search import ContextLine, SearchHit, highlight, search
from storage.vocab import ExportFormat, plural

log = logging.getLogger(__name__)

EMBED_LIMIT = 4096  # characters in an embed's description
# show_page's budget counts names, texts and a fixed overhead per line; escaping Markdown
# adds a little on top, so the budget leaves room for it (and the page is cut at the limit anyway).
PAGE_CHARS = 3600
LIST_PAGE = 10
SHOW_PAGE = 15  # utterances at most; fewer when they are long (PAGE_CHARS)
SEARCH_PAGE = 5
SUMMARY_PAGE = 30  # lines at most; fewer when they are long (PAGE_CHARS)
VIEW_TIMEOUT = 600.0  # buttons stay usable 10 minutes (an interaction token lives 15)
CONFIRM_TIMEOUT = 60.0
COLOUR = discord.Colour.blurple()

Render = Callable[[int], Awaitable[tuple[discord.Embed, Page]]]


def viewer_of(interaction: discord.Interaction) -> Viewer:
    guild, member = guild_member(interaction, "Use /log in the server whose calls you want to see.")
    return Viewer.member(member.id, guild.id, is_admin=member.guild_permissions.administrator)


def parse_session(value: str) -> int:
    text = value.strip().lstrip("#").split(" ", 1)[0]
    if not text.isdigit():
        raise CommandRefused("Pick a call from the list, or give its number (for example 12).")
    return int(text)


def _when(s: SessionSummary) -> str:
    return s.started_at.strftime("%Y-%m-%d %H:%M") + " UTC"


def _length(seconds: float | None) -> str:
    return call_clock(seconds) if seconds is not None else "-"


def _cut(text: str, limit: int = EMBED_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_embed(page: Page[SessionSummary], admin: bool) -> discord.Embed:
    scope = "all calls in this server" if admin else "calls in this server you were in"
    if not page.items:
        return discord.Embed(title="Stored calls", description=f"No stored {scope}.", colour=COLOUR)
    lines = []
    for s in page.items:
        who = ", ".join(escape(p, NAME_CHARS) for p in s.participants) or "nobody"
        title = escape(s.title or "untitled", 200)
        lines.append(
            f"**#{s.id}** {title} · {_when(s)} · {_length(s.duration)} · {plural(s.utterance_count, 'utterance')} "
            f"· {s.status}\n  {who}"
        )
    embed = discord.Embed(title="Stored calls", description=_cut("\n".join(lines)), colour=COLOUR)
    embed.set_footer(text=f"{page.first}-{page.last} of {page.total} ({scope}) · /log show ID reads one")
    return embed


def transcript_embed(tp: TranscriptPage, highlight: int | None = None) -> discord.Embed:
    s = tp.session
    lines = []
    for u in tp.utterances.items:
        mark = verdict_mark(u, lambda label: escape(label, NAME_CHARS))  # as the txt/md exports show it
        line = f"`{short_clock(u.start)}` **{escape(u.speaker, NAME_CHARS)}**{mark}: {escape(u.text, TEXT_CHARS)}"
        lines.append(f"▶ {line}" if u.id == highlight else line)
    body = "\n".join(lines) or "Nothing was transcribed in this call."
    embed = discord.Embed(
        title=_cut(f"#{s.id} {escape(s.title or 'untitled', 200)}", 256), description=_cut(body), colour=COLOUR
    )
    page = tp.utterances
    where = f"utterances {page.first}-{page.last} of {page.total}" if page.total else "no utterances"
    # The legend only where this page shows a mark.
    legend = f" · {LEGEND}" if any(u.verification is not None for u in page.items) else ""
    embed.set_footer(text=f"{_when(s)} · {s.status} · page {page.page + 1}/{page.pages}, {where}{legend}")
    return embed


def summary_lines(detail: SessionDetail) -> list[str]:
    """The summary and the shape as embed lines: headings in bold, each point and figure a
    list item, every name and word said escaped (``kit.escape``)."""

    def esc(text: str) -> str:
        return escape(text, 300)

    words = labels(detail.summary.language if detail.summary else None)
    lines: list[str] = []
    if detail.summary is not None:
        lines.append(f"__**{words['summary']}**__ ({words['source']} {esc(detail.summary.source)})")
        for item in summary_points(detail, detail.summary, esc):
            lines.append(item if item.startswith("- ") else f"**{item[:-1]}**")
    lines.append(f"__**{words['shape']}**__")
    lines.append(f"Picture: {esc(call_picture(detail).legend())}")
    lines += shape_lines(detail_shape(detail), esc, detail.summary.language if detail.summary else None)
    return lines


def picture_name(session_id: int) -> str:
    return f"s-talk-{session_id}-shape.png"


def summary_embed(detail: SessionDetail, page: Page[str]) -> discord.Embed:
    embed = discord.Embed(
        title=_cut(f"#{detail.id} {escape(detail.title or 'untitled', 200)}", 256),
        description=_cut("\n".join(page.items)),
        colour=COLOUR,
    )
    embed.set_footer(
        text=f"{detail.started_at.strftime('%Y-%m-%d %H:%M')} UTC · page {page.page + 1}/{page.pages}"
        " · the times are where the transcript (/log show) says it"
    )
    # The talk share and who spoke when, attached to the reply (the colours are named in the lines).
    embed.set_image(url=f"attachment://{picture_name(detail.id)}")
    return embed


def highlighted(text: str, spans: list[tuple[int, int]]) -> str:
    """The text made safe as a whole (a link split by a highlight is still defanged), the hits in bold."""
    return highlight(text, spans, lambda t: escape(t, TEXT_CHARS), "**", "**")


def _quoted(c: ContextLine) -> str:
    return f"> `{short_clock(c.start)}` {escape(c.speaker, NAME_CHARS)}: {escape(c.text, TEXT_CHARS)}"


def search_embed(query: str, page: Page[SearchHit]) -> discord.Embed:
    if not page.items:
        return discord.Embed(
            title="Search",
            description=f"Nothing found for “{escape(query, 200)}” in the calls you can see.",
            colour=COLOUR,
        )
    blocks = []
    for n, h in enumerate(page.items, page.first):
        context = [
            *map(_quoted, h.before),
            f"> `{short_clock(h.start)}` **{escape(h.speaker, NAME_CHARS)}**: {highlighted(h.text, h.spans)}",
            *map(_quoted, h.after),
        ]
        title = escape(h.session_title or "untitled", 200)
        blocks.append(
            f"**{n}.** call **#{h.session_id}** {title} · "
            f"{h.session_started_at.strftime('%Y-%m-%d')}\n" + "\n".join(context)
        )
    embed = discord.Embed(
        title=_cut(f"Search: {escape(query, 200)}", 256), description=_cut("\n\n".join(blocks)), colour=COLOUR
    )
    embed.set_footer(text=f"hits {page.first}-{page.last} of {page.total} · pick one below to open the call there")
    return embed


class Pager(OwnerOnlyView):
    """Previous / next buttons over ``render(page)``; the ends disable the way past them."""

    def __init__(self, owner_id: int, render: Render, page: Page, *, timeout: float = VIEW_TIMEOUT) -> None:
        super().__init__(owner_id, timeout)
        self.render = render
        self.page = page
        self._update()

    def _update(self) -> None:
        self.prev.disabled = not self.page.has_prev
        self.next.disabled = not self.page.has_next

    async def _turn(self, interaction: discord.Interaction, to: int) -> None:
        embed, self.page = await self.render(max(to, 0))
        self._update()
        self.refresh(interaction)
        await interaction.response.edit_message(embed=embed, view=self)

    def refresh(self, interaction: discord.Interaction) -> None:
        """Hook: the page changed (search refreshes its jump menu)."""

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary, custom_id="log:prev")
    async def prev(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._turn(interaction, self.page.page - 1)

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary, custom_id="log:next")
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._turn(interaction, self.page.page + 1)


class SearchPager(Pager):
    """Search hits with a menu that opens the call at the chosen hit."""

    def __init__(
        self,
        cog: LogCog,
        viewer: Viewer,
        owner_id: int,
        render: Render,
        page: Page[SearchHit],
        *,
        timeout: float = VIEW_TIMEOUT,
    ) -> None:
        self.cog = cog
        self.viewer = viewer
        self.jump: discord.ui.Select[SearchPager] = discord.ui.Select(
            custom_id="log:jump", placeholder="Open the call at a hit…"
        )
        self.jump.callback = self._jump  # type: ignore[method-assign]
        super().__init__(owner_id, render, page, timeout=timeout)
        self._fill(page)
        if page.items:
            self.add_item(self.jump)

    def _fill(self, page: Page[SearchHit]) -> None:
        self.jump.options = [
            discord.SelectOption(
                label=for_discord_plain(f"{n}. #{h.session_id} {short_clock(h.start)} {h.speaker}", 100),
                description=for_discord_plain(h.text, 100) or None,
                value=f"{h.session_id}:{h.utterance_id}",
            )
            for n, h in enumerate(page.items, page.first)
        ]

    def refresh(self, interaction: discord.Interaction) -> None:
        self._fill(self.page)

    async def _jump(self, interaction: discord.Interaction) -> None:
        session_id, utterance_id = (int(x) for x in self.jump.values[0].split(":"))
        await self.cog.open_transcript(interaction, self.viewer, session_id, at_utterance=utterance_id)


async def _delete_call(db, viewer: Viewer, owner_id: int, session_id: int) -> str:
    """Delete the call (confirmed); what to tell whoever asked."""
    done: Deleted = await asyncio.to_thread(delete_session, db, viewer, session_id)
    log.info("call %s deletion by user %s in guild %s: %s", session_id, owner_id, viewer.guild_id, done.status)
    if done.status == "deleted":
        return (
            f"Deleted call #{session_id} for good: {plural(done.utterances, 'utterance')}, "
            f"{plural(done.suggestions, 'suggestion')} and {plural(done.participants, 'participant')}; "
            "it is no longer searchable."
        )
    return f"Call #{session_id} was not deleted: {refusal(done.status, session_id)}"


def refusal(status: str, session_id: int) -> str:
    return {
        "not_found": f"there is no call #{session_id} that you can see in this server.",
        "forbidden": f"only whoever started call #{session_id} or a server administrator can delete it.",
        "active": f"call #{session_id} is still being recorded; end it with /leave first.",
    }.get(status, "it could not be deleted.")


@app_commands.guild_only()
class LogCog(commands.GroupCog, group_name="log", group_description="Review the calls S-Talk stored"):
    def __init__(self, bot: StalkBot) -> None:
        self.bot = bot
        self.view_timeout = VIEW_TIMEOUT
        self.list_size = LIST_PAGE
        self.show_size = SHOW_PAGE
        self.search_size = SEARCH_PAGE
        self.summary_size = SUMMARY_PAGE
        super().__init__()

    # -- list ----------------------------------------------------------------------------

    @app_commands.command(name="list", description="Recent calls in this server that you were in")
    async def list_(self, interaction: discord.Interaction) -> None:
        viewer = viewer_of(interaction)

        async def render(n: int) -> tuple[discord.Embed, Page]:
            page = await asyncio.to_thread(list_page, self.bot.db, viewer, page=n, page_size=self.list_size)
            return list_embed(page, viewer.is_admin), page

        embed, page = await render(0)
        await self._send_paged(interaction, embed, Pager(interaction.user.id, render, page, timeout=self.view_timeout))

    # -- show ----------------------------------------------------------------------------

    @app_commands.command(name="show", description="Read a call's transcript")
    @app_commands.describe(session="the call (type to search by number, title or name)")
    async def show(self, interaction: discord.Interaction, session: str) -> None:
        await self.open_transcript(interaction, viewer_of(interaction), parse_session(session))

    async def open_transcript(
        self, interaction: discord.Interaction, viewer: Viewer, session_id: int, *, at_utterance: int | None = None
    ) -> None:
        """Send the transcript page (holding ``at_utterance`` if given) with its own buttons."""

        async def render(n: int, at: int | None = None) -> tuple[discord.Embed, Page]:
            tp = await asyncio.to_thread(
                show_page,
                self.bot.db,
                viewer,
                session_id,
                page=n,
                page_size=self.show_size,
                max_chars=PAGE_CHARS,
                at_utterance=at,
            )
            if tp is None:
                raise CommandRefused(
                    f"There is no call #{session_id} that you can see in this server (it may have been deleted)."
                )
            return transcript_embed(tp, highlight=at_utterance), tp.utterances

        embed, page = await render(0, at_utterance)
        await self._send_paged(interaction, embed, Pager(interaction.user.id, render, page, timeout=self.view_timeout))

    # -- summary -------------------------------------------------------------------------

    @app_commands.command(name="summary", description="A call's summary and the shape of its conversation")
    @app_commands.describe(session="the call (type to search by number, title or name)")
    async def summary(self, interaction: discord.Interaction, session: str) -> None:
        viewer, session_id = viewer_of(interaction), parse_session(session)

        def load(n: int) -> tuple[SessionDetail, Page[str]] | None:
            # A call from before summaries (or whose summary /forget dropped) gets the
            # extractive one here: quick enough for an interaction; the model's is made at a call's end.
            if summary_for(self.bot.db, session_id, None, viewer=viewer) is None:
                return None
            detail = get_session(self.bot.db, session_id, viewer)
            if detail is None:
                return None
            lines = summary_lines(detail)
            bounds = budget_bounds([len(line) + 1 for line in lines], self.summary_size, PAGE_CHARS)
            n = clamp(n, bounds)
            start, end = bounds[n] if bounds else (0, 0)
            return detail, make_page(lines[start:end], n, bounds, len(lines))

        async def render(n: int) -> tuple[discord.Embed, Page]:
            got = await asyncio.to_thread(load, n)
            if got is None:
                raise CommandRefused(
                    f"There is no call #{session_id} that you can see in this server (it may have been deleted)."
                )
            return summary_embed(*got), got[1]

        embed, page = await render(0)
        view = Pager(interaction.user.id, render, page, timeout=self.view_timeout)
        detail = await asyncio.to_thread(get_session, self.bot.db, session_id, viewer)
        if detail is None:
            raise CommandRefused(f"There is no call #{session_id} that you can see in this server.")
        picture = await asyncio.to_thread(call_picture, detail)
        file = discord.File(io.BytesIO(picture.png), filename=picture_name(session_id))
        await interaction.response.send_message(embed=embed, view=view, file=file, ephemeral=True)
        view.message_of = interaction

    # -- search --------------------------------------------------------------------------

    @app_commands.command(name="search", description="Find words in the calls you can see")
    @app_commands.describe(query='words to find (all of them); "quotes" keep a phrase together')
    async def search_(self, interaction: discord.Interaction, query: str) -> None:
        viewer = viewer_of(interaction)

        async def render(n: int) -> tuple[discord.Embed, Page]:
            page = await asyncio.to_thread(search, self.bot.db, viewer, query, page=n, page_size=self.search_size)
            return search_embed(query, page), page

        embed, page = await render(0)
        view = SearchPager(self, viewer, interaction.user.id, render, page, timeout=self.view_timeout)
        await self._send_paged(interaction, embed, view)

    # -- export --------------------------------------------------------------------------

    @app_commands.command(name="export", description="Download a call's transcript as a file")
    @app_commands.describe(session="the call", format="json, plain text, Markdown, or SRT/WebVTT subtitles")
    async def export(
        self, interaction: discord.Interaction, session: str, format: Literal["json", "txt", "md", "srt", "vtt"]
    ) -> None:
        viewer = viewer_of(interaction)
        session_id = parse_session(session)
        if format not in FORMATS:  # Discord only offers the choices; a stale client might not
            raise CommandRefused("Pick one of the formats offered: " + ", ".join(FORMATS) + ".")
        await interaction.response.defer(ephemeral=True, thinking=True)
        out = await asyncio.to_thread(export_session, self.bot.db, viewer, session_id, ExportFormat(format))
        if out is None:
            raise CommandRefused(f"There is no call #{session_id} that you can see in this server.")
        limit = interaction.guild.filesize_limit if interaction.guild is not None else 10 * 1024 * 1024
        data = out.data
        if len(data) > limit:
            raise CommandRefused(
                f"Call #{session_id} as {format} is {len(data) // 1024} KiB, more than Discord "
                f"lets S-Talk attach here ({limit // 1024} KiB); ask the bot's operator for "
                "`python -m bot logs export`."
            )
        await interaction.followup.send(
            f"Call #{session_id} as {format}:",
            file=discord.File(io.BytesIO(data), filename=out.filename),
            ephemeral=True,
        )

    # -- delete --------------------------------------------------------------------------

    @app_commands.command(name="delete", description="Delete a call for everyone (whoever started it, or admins)")
    @app_commands.describe(session="the call")
    async def delete(self, interaction: discord.Interaction, session: str) -> None:
        viewer = viewer_of(interaction)
        session_id = parse_session(session)
        permission = await asyncio.to_thread(may_delete, self.bot.db, viewer, session_id)
        if permission != "allowed":
            raise CommandRefused(refusal(permission, session_id).capitalize())
        owner = interaction.user.id

        async def confirmed(_: discord.Interaction) -> str:
            return await _delete_call(self.bot.db, viewer, owner, session_id)

        view = ConfirmView(
            owner,
            confirmed,
            label="Delete for everyone",
            prefix="log",
            confirm_id="delete",
            cancel_id="keep",
            timeout=CONFIRM_TIMEOUT,
        )
        await interaction.response.send_message(
            f"Delete call #{session_id} for everyone in it? Its transcript, suggestions and search entries are "
            "removed for good; this cannot be undone.",
            view=view,
            ephemeral=True,
        )
        view.message_of = interaction

    # -- autocomplete --------------------------------------------------------------------

    @show.autocomplete("session")
    @summary.autocomplete("session")
    @export.autocomplete("session")
    @delete.autocomplete("session")
    async def session_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            viewer = viewer_of(interaction)
        except CommandRefused:
            return []
        found = await asyncio.to_thread(find_sessions, self.bot.db, viewer, current, limit=25)
        return [app_commands.Choice(name=c.label, value=str(c.id)) for c in found]

    # -- sending -------------------------------------------------------------------------

    async def _send_paged(self, interaction: discord.Interaction, embed: discord.Embed, view: Pager) -> None:
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)
        view.message_of = interaction


async def setup(bot: StalkBot) -> None:
    await bot.add_cog(LogCog(bot))
