"""One call as a file: json, txt, md, srt or vtt, always UTF-8.

``srt`` (SubRip) and ``vtt`` (WebVTT) put each utterance on the call's timeline, so a
recording of the call can be subtitled with them; overlapping speech gives overlapping cues,
which both formats allow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.plaintext import plain
from storage.access import Viewer
from storage.db import Database
from storage.errors import StalkError
from storage.queries import SessionDetail, UtteranceInfo, dump_session_json, get_session

FORMATS = ("json", "txt", "md", "srt", "vtt")
MEDIA_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}
# What a verification verdict looks like beside a speaker's name (none: not checked).
MARKS = {"verified": "✓", "mismatch": "✗", "unknown": "?"}


@dataclass(frozen=True)
class Export:
    filename: str
    media_type: str
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def export_session(db: Database, viewer: Viewer, session_id: int, fmt: str) -> Export | None:
    """The call rendered as ``fmt``; None when it does not exist or ``viewer`` may not see it."""
    to_text = _renderer(fmt)  # a bad format is refused before the database is read
    detail = get_session(db, session_id, viewer)
    if detail is None:
        return None
    return Export(filename=f"s-talk-{detail.id}.{fmt}", media_type=MEDIA_TYPES[fmt], text=to_text(detail))


def render(detail: SessionDetail, fmt: str) -> str:
    return _renderer(fmt)(detail)


def _renderer(fmt: str) -> Callable[[SessionDetail], str]:
    renderers = {"json": dump_session_json, "txt": to_txt, "md": to_md, "srt": to_srt, "vtt": to_vtt}
    if fmt not in renderers:
        raise StalkError(f"unknown export format {fmt!r}", "use one of " + ", ".join(FORMATS))
    return renderers[fmt]


def clock(seconds: float, sep: str) -> str:
    """``HH:MM:SS<sep>mmm`` (SRT: ``,``; WebVTT: ``.``); hours keep growing past 99."""
    ms = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def short_clock(seconds: float) -> str:
    """Call time for reading: ``MM:SS.ss``, or ``H:MM:SS.ss`` past the hour."""
    centis = max(0, int(round(seconds * 100)))
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, cs = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{cs:02d}" if hours else f"{minutes:02d}:{secs:02d}.{cs:02d}"


def one_line(text: str | None) -> str:
    """Names, titles and texts in the text formats: one line of visible characters
    (``bot.plaintext.plain``). A blank line would end a subtitle cue or break the txt header,
    and an escape sequence would reach the terminal of whoever reads the file."""
    return plain(text or "")


def _cue_times(u: UtteranceInfo, sep: str) -> str:
    start = clock(u.start, sep)
    # A cue must not end before it starts once rounded to milliseconds.
    end = clock(max(u.end, u.start), sep)
    return f"{start} --> {end}"


def to_srt(detail: SessionDetail) -> str:
    cues = []
    for n, u in enumerate(detail.utterances, 1):
        # SubRip has no escaping; an arrow in the text would read as a timing line.
        text = one_line(u.text).replace("-->", "->")
        cues.append(f"{n}\n{_cue_times(u, ',')}\n{one_line(u.speaker)}: {text}\n")
    return "\n".join(cues)


def vtt_escape(text: str) -> str:
    """WebVTT cue text: ``&`` and ``<`` start markup and ``>`` ends it (and ``-->`` is not
    allowed in a cue), so all three are written as character references."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(detail: SessionDetail) -> str:
    blocks = ["WEBVTT\n"]
    # NOTE blocks must not contain "-->" or a blank line.
    note = one_line(_heading(detail)).replace("-->", "->")
    blocks.append(f"NOTE {note}\n")
    for n, u in enumerate(detail.utterances, 1):
        # <v Speaker> is WebVTT's voice span: players show who speaks.
        voice, said = vtt_escape(one_line(u.speaker)), vtt_escape(one_line(u.text))
        blocks.append(f"{n}\n{_cue_times(u, '.')}\n<v {voice}>{said}\n")
    return "\n".join(blocks)


def _heading(detail: SessionDetail) -> str:
    title = one_line(detail.title) or f"session {detail.id}"
    when = detail.started_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{title} ({when})"


def _mark(u: UtteranceInfo) -> str:
    mark = MARKS.get(u.verification or "")
    return f" {mark}" if mark else ""


def _duration(detail: SessionDetail) -> str:
    return short_clock(detail.duration) if detail.duration is not None else "-"


def to_txt(detail: SessionDetail) -> str:
    names = ", ".join(one_line(p.name) for p in detail.participants) or "-"
    lines = [
        _heading(detail),
        f"session {detail.id}, {detail.status}, length {_duration(detail)}",
        f"participants: {names}",
        f"verification: {MARKS['verified']} voice matches the account, {MARKS['mismatch']} it does not, "
        f"{MARKS['unknown']} undecided",
        "",
    ]
    for u in detail.utterances:
        when = f"[{short_clock(u.start)} - {short_clock(u.end)}]"
        lines.append(f"{when} {one_line(u.speaker)}{_mark(u)}: {one_line(u.text)}")
    if detail.suggestions:
        lines += ["", "Suggestions:"]
        for g in detail.suggestions:
            to = f" (to {', '.join(one_line(r) for r in g.recipients)})" if g.recipients else ""
            lines.append(f"[{short_clock(g.at)}]{to} {one_line(g.text)}")
    return "\n".join(lines) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&-])")


def md_escape(text: str) -> str:
    """CommonMark: a backslash makes any ASCII punctuation literal; these are the ones that
    can start emphasis, code, links, HTML, headings, lists, tables or entities."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def to_md(detail: SessionDetail) -> str:
    lines = [f"# {md_escape(_heading(detail))}", ""]
    lines.append(f"- Session: {detail.id} ({md_escape(detail.status)}), length {_duration(detail)}")
    lines.append("- Participants: " + (", ".join(md_escape(p.name) for p in detail.participants) or "\\-"))
    lines += ["", "## Transcript", ""]
    for u in detail.utterances:
        lines.append(f"- `{short_clock(u.start)}` **{md_escape(u.speaker)}**{_mark(u)}: {md_escape(u.text)}")
    if detail.suggestions:
        lines += ["", "## Suggestions", ""]
        for g in detail.suggestions:
            to = f" (to {', '.join(md_escape(r) for r in g.recipients)})" if g.recipients else ""
            lines.append(f"- `{short_clock(g.at)}`{to}: {md_escape(g.text)}")
    lines.append("")
    lines.append(
        f"{MARKS['verified']} voice matches the account · {MARKS['mismatch']} it does not · "
        f"{MARKS['unknown']} undecided"
    )
    return "\n".join(lines) + "\n"
