"""One call as a file: json, txt, md, srt or vtt, always UTF-8.

``srt`` (SubRip) and ``vtt`` (WebVTT) put each utterance on the call's timeline, so a
recording of the call can be subtitled with them; overlapping speech gives overlapping cues,
which both formats allow.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

from storage.access import Viewer
from storage.db import Database
from storage.errors import StalkError
from storage.picture import Picture, draw
from storage.plaintext import plain
from storage.queries import SessionDetail, UtteranceInfo, detail_shape, dump_session_json, get_session
from storage.shape import Shape, Spoken
from storage.summaries import SummaryInfo
from storage.vocab import ExportFormat, PointKind, Verification

FORMATS = tuple(ExportFormat)
MEDIA_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.TXT: "text/plain; charset=utf-8",
    ExportFormat.MD: "text/markdown; charset=utf-8",
    ExportFormat.SRT: "application/x-subrip",
    ExportFormat.VTT: "text/vtt",
}
# What a verification verdict looks like beside a speaker's name (none: not checked).
MARKS = {Verification.VERIFIED: "✓", Verification.MISMATCH: "✗", Verification.UNKNOWN: "?"}


@dataclass(frozen=True)
class Export:
    filename: str
    media_type: str
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def export_session(db: Database, viewer: Viewer, session_id: int, fmt: str) -> Export | None:
    """The call rendered as ``fmt`` (an ``ExportFormat`` value); None when it does not exist or
    ``viewer`` may not see it."""
    known = export_format(fmt)  # a bad format is refused before the database is read
    detail = get_session(db, session_id, viewer)
    if detail is None:
        return None
    return Export(filename=f"s-talk-{detail.id}.{known}", media_type=MEDIA_TYPES[known], text=render(detail, known))


def export_format(fmt: str) -> ExportFormat:
    try:
        return ExportFormat(fmt)
    except ValueError:
        raise StalkError(f"unknown export format {fmt!r}", "use one of " + ", ".join(FORMATS)) from None


def render(detail: SessionDetail, fmt: str) -> str:
    return _RENDERERS[export_format(fmt)](detail)


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
    (``storage.plaintext.plain``). A blank line would end a subtitle cue or break the txt header,
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


def verdict_mark(u: UtteranceInfo, escape: Callable[[str], str] = one_line) -> str:
    """The verdict beside a speaker's name: `` ✓``, `` ✗``, `` ?``, with who the voice sounds
    like where that is known (`` ✗ (sounds like bob)``), as ``replay`` printed it during the
    call; empty when the voice was not checked. ``escape`` makes the label safe for the format."""
    if u.verification is None:
        return ""
    mark = f" {MARKS[u.verification]}"
    if u.speaker_label and u.verification != Verification.VERIFIED:
        mark += f" (sounds like {escape(u.speaker_label)})"
    return mark


def any_marks(detail: SessionDetail) -> bool:
    """Whether a verdict shows anywhere: the legend is printed only then."""
    return any(u.verification is not None for u in detail.utterances)


LEGEND = (
    f"{MARKS[Verification.VERIFIED]} voice matches the account, {MARKS[Verification.MISMATCH]} it does not, "
    f"{MARKS[Verification.UNKNOWN]} undecided"
)


def _duration(detail: SessionDetail) -> str:
    return short_clock(detail.duration) if detail.duration is not None else "-"


# A summary's headings in the call's language (others: English).
LABELS = {
    "en": {
        "summary": "Summary",
        PointKind.TOPIC: "Topics",
        PointKind.DECISION: "Decisions",
        PointKind.TODO: "To-dos",
        PointKind.QUESTION: "Open questions",
        "shape": "Shape of the conversation",
        "source": "source:",
    },
    "ko": {
        "summary": "요약",
        PointKind.TOPIC: "주제",
        PointKind.DECISION: "결정",
        PointKind.TODO: "할 일",
        PointKind.QUESTION: "남은 질문",
        "shape": "대화의 모습",
        "source": "출처:",
    },
}


def labels(language: str | None) -> dict:
    return LABELS.get(language or "en", LABELS["en"])


def point_refs(detail: SessionDetail, refs: list[int], limit: int = 3) -> str:
    """Where a point came from, as the transcript shows it: the call times of its lines."""
    at = {u.id: u.start for u in detail.utterances}
    times = [short_clock(at[r]) for r in refs if r in at]
    more = f" +{len(times) - limit}" if len(times) > limit else ""
    return ", ".join(times[:limit]) + more


def summary_points(detail: SessionDetail, summary: SummaryInfo, escape: Callable[[str], str] = one_line) -> list[str]:
    """The summary as list items under headings of its language: ``- text (alice) [00:12.00]``."""
    words = labels(summary.language)
    out: list[str] = []
    for kind in PointKind:
        points = summary.of(kind)
        if not points:
            continue
        out.append(f"{words[kind]}:")
        for p in points:
            who = f" ({', '.join(escape(n) for n in p.speakers)})" if p.speakers and kind != PointKind.TOPIC else ""
            where = point_refs(detail, p.refs)
            out.append(f"- {escape(p.text)}{who}" + (f" [{where}]" if where else ""))
    return out


def percent(share: float) -> str:
    return f"{round(share * 100):d}%"


# The shape's lines in the call's language (others: English); names and figures filled in.
SHAPE_WORDS = {
    "en": {
        "person": "- {name}: {share} of the talk ({time}), {turns} {turn_word}, longest {longest:.1f} s",
        "turn": "turn",
        "turns": "turns",
        "longest": "- longest stretch: {name}, {seconds:.1f} s from {at}",
        "answered": "- answered most: {name} after {other} ({count}x)",
        "silences": "- silences of {threshold:g} s or more: {count}",
        "quietest": ", longest {seconds:.1f} s at {at}",
        "overlaps": "- overlaps: {overlaps}, interruptions: {interruptions}",
        "over": "{name} over {other} {count}x",
        "resumed": "talk resumed after {seconds:.1f} s ({name})",
        "silent": "no talk within {seconds:g} s",
        "hint": "- hint at {at}: {after}",
    },
    "ko": {
        "person": "- {name}: 발화의 {share} ({time}), 차례 {turns}{turn_word}, 가장 긴 차례 {longest:.1f}초",
        "turn": "번",
        "turns": "번",
        "longest": "- 가장 길게 말한 사람: {name}, {at}부터 {seconds:.1f}초",
        "answered": "- 가장 자주 이어 말함: {other} 다음에 {name} ({count}번)",
        "silences": "- {threshold:g}초 이상의 침묵: {count}번",
        "quietest": ", 가장 긴 침묵 {at}에 {seconds:.1f}초",
        "overlaps": "- 겹친 말: {overlaps}번, 끼어들기: {interruptions}번",
        "over": "{name} → {other} {count}번",
        "resumed": "{seconds:.1f}초 뒤 대화 재개 ({name})",
        "silent": "{seconds:g}초 안에 아무도 말하지 않음",
        "hint": "- {at}의 힌트: {after}",
    },
}


def shape_lines(shape: Shape, escape: Callable[[str], str] = one_line, language: str | None = None) -> list[str]:
    """The conversation's shape in a few lines, in ``language`` (Korean or English)."""
    w = SHAPE_WORDS.get(language or "en", SHAPE_WORDS["en"])
    out = []
    for p in shape.participants:
        out.append(
            w["person"].format(
                name=escape(p.name),
                share=percent(p.share),
                time=short_clock(p.talk_seconds),
                turns=p.turns,
                turn_word=w["turn"] if p.turns == 1 else w["turns"],
                longest=p.longest_turn_seconds,
            )
        )
    if shape.longest is not None:
        longest = shape.longest
        out.append(
            w["longest"].format(name=escape(longest.speaker), seconds=longest.seconds, at=short_clock(longest.start))
        )
    if shape.answers:
        top = shape.answers[0]
        out.append(w["answered"].format(name=escape(top.speaker), other=escape(top.other), count=top.count))
    quiet = shape.longest_silence
    silences = w["silences"].format(threshold=shape.silence_seconds, count=len(shape.silences))
    if quiet is not None:
        silences += w["quietest"].format(seconds=quiet.seconds, at=short_clock(quiet.start))
    out.append(silences)
    interruptions = ", ".join(
        w["over"].format(name=escape(a.speaker), other=escape(a.other), count=a.count) for a in shape.interrupters[:3]
    )
    out.append(
        w["overlaps"].format(overlaps=len(shape.overlaps), interruptions=len(shape.interruptions))
        + (f" ({interruptions})" if interruptions else "")
    )
    for h in shape.hints:
        after = (
            w["resumed"].format(seconds=h.resumed_after, name=escape(h.by or ""))
            if h.resumed and h.resumed_after is not None
            else w["silent"].format(seconds=shape.resume_seconds)
        )
        out.append(w["hint"].format(at=short_clock(h.at), after=after))
    return out


def call_picture(detail: SessionDetail) -> Picture:
    """The talk-share bar and the timeline of who spoke when (``storage.picture``)."""
    return draw(detail_shape(detail), [Spoken(u.id, u.speaker, u.start, u.end) for u in detail.utterances])


def summary_text(detail: SessionDetail) -> str:
    """The summary and the shape as plain text (``logs summary``, the txt export's top)."""
    lines = []
    if detail.summary is not None:
        words = labels(detail.summary.language)
        lines += [f"{words['summary']} ({words['source']} {one_line(detail.summary.source)})"]
        lines += summary_points(detail, detail.summary) or ["-"]
        lines.append("")
    lines.append(f"{labels(detail.summary.language if detail.summary else None)['shape']}:")
    lines += shape_lines(detail_shape(detail), language=detail.summary.language if detail.summary else None)
    return "\n".join(lines) + "\n"


def to_txt(detail: SessionDetail) -> str:
    names = ", ".join(one_line(p.name) for p in detail.participants) or "-"
    lines = [
        _heading(detail),
        f"session {detail.id}, {detail.status}, length {_duration(detail)}",
        f"participants: {names}",
        *([f"verification: {LEGEND}"] if any_marks(detail) else []),
        "",
    ]
    if detail.summary is not None:
        lines += [summary_text(detail)]
    for u in detail.utterances:
        when = f"[{short_clock(u.start)} - {short_clock(u.end)}]"
        lines.append(f"{when} {one_line(u.speaker)}{verdict_mark(u)}: {one_line(u.text)}")
    if detail.suggestions:
        # "Hints", the product's word for them (/hints, replay's "hint to ..." lines).
        lines += ["", "Hints:"]
        for g in detail.suggestions:
            to = f" (to {', '.join(one_line(r) for r in g.recipients)})" if g.recipients else ""
            lines.append(f"[{short_clock(g.at)}]{to} {one_line(g.text)}")
    return "\n".join(lines) + "\n"


# Inline text after a fixed prefix (never at a line's start, so no block can begin there):
# what can start code, emphasis, strikethrough, a link or image, HTML or an autolink, or escape
# what follows. An underscore between letters or digits cannot be emphasis; an ampersand only
# matters where it would spell an entity; brackets being escaped, "(" and "!" are inert.
_MD_SPECIAL = re.compile(r"[\\`*\[\]<~]|(?<![^\W_])_|_(?![^\W_])|&(?=#?\w+;)")
_MD_HEADING_END = re.compile(r"(#+)$")  # an ATX heading would drop trailing #s as its closing


def md_escape(text: str, *, heading: bool = False) -> str:
    """CommonMark inline text: a backslash before each character that would be markup there,
    and nothing else (``Weekly sync (2026-12-01)`` stays as it is)."""
    out = _MD_SPECIAL.sub(lambda m: "\\" + m[0], one_line(text))
    return _MD_HEADING_END.sub(lambda m: "\\#" * len(m[1]), out) if heading else out


def to_md(detail: SessionDetail) -> str:
    lines = [f"# {md_escape(_heading(detail), heading=True)}", ""]
    lines.append(f"- Session: {detail.id} ({detail.status}), length {_duration(detail)}")
    lines.append("- Participants: " + (", ".join(md_escape(p.name) for p in detail.participants) or "-"))
    if detail.summary is not None:
        words = labels(detail.summary.language)
        lines += ["", f"## {words['summary']}", "", f"_{words['source']} {md_escape(detail.summary.source)}_"]
        for item in summary_points(detail, detail.summary, md_escape):
            lines += [item] if item.startswith("- ") else ["", f"**{item[:-1]}**", ""]
        lines += ["", f"## {words['shape']}", ""]
        picture = call_picture(detail)
        # Embedded, so the file stays one file; the colours named, since the picture has no text.
        data = base64.b64encode(picture.png).decode("ascii")
        lines += [f"![talk share and who spoke when](data:image/png;base64,{data})", ""]
        lines += [f"Colours: {md_escape(picture.legend())}", ""]  # colour names stay English
        lines += shape_lines(detail_shape(detail), md_escape, detail.summary.language)
    lines += ["", "## Transcript", ""]
    for u in detail.utterances:
        mark = verdict_mark(u, md_escape)
        lines.append(f"- `{short_clock(u.start)}` **{md_escape(u.speaker)}**{mark}: {md_escape(u.text)}")
    if detail.suggestions:
        lines += ["", "## Hints", ""]
        for g in detail.suggestions:
            to = f" (to {', '.join(md_escape(r) for r in g.recipients)})" if g.recipients else ""
            lines.append(f"- `{short_clock(g.at)}`{to}: {md_escape(g.text)}")
    if any_marks(detail):
        lines += ["", LEGEND.replace(", ", " · ")]
    return "\n".join(lines) + "\n"


_RENDERERS: dict[ExportFormat, Callable[[SessionDetail], str]] = {
    ExportFormat.JSON: dump_session_json,
    ExportFormat.TXT: to_txt,
    ExportFormat.MD: to_md,
    ExportFormat.SRT: to_srt,
    ExportFormat.VTT: to_vtt,
}
