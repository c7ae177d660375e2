"""Every export format parsed back by a strict parser and compared with the stored call."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, replace

import pytest

from storage import CallRecorder, NewSession, UtteranceRecord, get_session, session_to_json
from storage.access import Viewer
from storage.export import FORMATS, MARKS, export_session, render

OPERATOR = Viewer.cli_operator()
KEYS = ("en_g1", "zh_g1", "ko_g3")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    lines: list[str]


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def parse_srt(data: bytes) -> list[Cue]:
    """SubRip: numbered blocks from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text, one blank line."""
    text = data.decode("utf-8")  # strict: invalid UTF-8 raises
    assert "\r" not in text and text.endswith("\n") and not text.endswith("\n\n\n")
    timing = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d),(\d{3})$")
    cues = []
    for n, block in enumerate(text[:-1].split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(n), block
        m = timing.match(lines[1])
        assert m, lines[1]
        h1, m1, s1, f1, h2, m2, s2, f2 = map(int, m.groups())
        start, end = ((h1 * 60 + m1) * 60 + s1) * 1000 + f1, ((h2 * 60 + m2) * 60 + s2) * 1000 + f2
        assert end >= start
        payload = lines[2:]
        assert payload and all(line.strip() and "-->" not in line for line in payload), block
        cues.append(Cue(start, end, payload))
    return cues


_VTT_TIMING = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")
_ENTITY = re.compile(r"&(amp|lt|gt|nbsp|lrm|rlm);")


def parse_vtt(data: bytes) -> tuple[list[str], list[tuple[Cue, str, str]]]:
    """WebVTT: the ``WEBVTT`` signature, NOTE blocks, cues with ``HH:MM:SS.mmm`` timings; cue
    text may hold only ``<v annotation>`` and character references, no bare ``&`` or ``<``.
    Returns the NOTE texts and (cue, voice, text) with references decoded."""
    text = data.decode("utf-8")
    assert "\r" not in text and "\0" not in text
    blocks = text.rstrip("\n").split("\n\n")
    assert re.fullmatch(r"WEBVTT([ \t][^\n]*)?", blocks[0]), blocks[0]
    notes, cues = [], []
    for block in blocks[1:]:
        assert block and not block.startswith("\n"), repr(block)
        if re.match(r"NOTE($|[ \t\n])", block):
            assert "-->" not in block
            notes.append(block[5:])
            continue
        lines = block.split("\n")
        if "-->" not in lines[0]:
            lines = lines[1:]  # cue identifier
        m = _VTT_TIMING.match(lines[0])
        assert m, lines[0]
        h1, m1, s1, f1, h2, m2, s2, f2 = map(int, m.groups())
        start, end = ((h1 * 60 + m1) * 60 + s1) * 1000 + f1, ((h2 * 60 + m2) * 60 + s2) * 1000 + f2
        payload = lines[1:]
        assert len(payload) == 1 and "-->" not in payload[0], block
        v = re.fullmatch(r"<v ([^>]+)>(.*)", payload[0])
        assert v, payload[0]
        for part in v.groups():
            assert "<" not in part and ">" not in part
            assert "&" not in _ENTITY.sub("", part), part  # every & starts a reference
        cues.append((Cue(start, end, payload), html.unescape(v.group(1)), html.unescape(v.group(2))))
    return notes, cues


def md_unescape(text: str) -> str:
    # Every character that would be markup inline must arrive backslash-escaped (code, emphasis,
    # strikethrough, links, HTML, an entity, an underscore not inside a word) ...
    bare = re.sub(r"\\[!-/:-@\[-`{-~]", "", text)
    assert not re.search(r"[\\`*\[\]<~]|(?<![^\W_])_|_(?![^\W_])|&#?\w+;", bare), text
    # ... and nothing else: "(2026-12-01)", "Q&A", "1. #3 | +" read as written.
    assert not re.search(r"\\[-().#+!|>:]|\\&(?!#?\w+;)", text), text
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("key", KEYS)
def test_srt(ro_db, library, key: str) -> None:
    detail = get_session(ro_db, library.ids[key])
    export = export_session(ro_db, OPERATOR, detail.id, "srt")
    assert export.filename == f"s-talk-{detail.id}.srt"
    cues = parse_srt(export.data)
    assert [(c.start_ms, c.end_ms) for c in cues] == [(ms(u.start), ms(u.end)) for u in detail.utterances]
    assert [c.lines for c in cues] == [[f"{u.speaker}: {one_line(u.text)}"] for u in detail.utterances]


@pytest.mark.parametrize("key", KEYS)
def test_vtt(ro_db, library, key: str) -> None:
    detail = get_session(ro_db, library.ids[key])
    notes, cues = parse_vtt(export_session(ro_db, OPERATOR, detail.id, "vtt").data)
    assert len(notes) == 1 and detail.title in notes[0]
    assert [(c.start_ms, c.end_ms, voice, said) for c, voice, said in cues] == [
        (ms(u.start), ms(u.end), u.speaker, one_line(u.text)) for u in detail.utterances
    ]


@pytest.mark.parametrize("key", KEYS)
def test_json(ro_db, library, key: str) -> None:
    detail = get_session(ro_db, library.ids[key])
    data = export_session(ro_db, OPERATOR, detail.id, "json").data
    assert b"\\u" not in data  # Korean and Chinese as themselves
    parsed = json.loads(data.decode("utf-8"))
    assert parsed == session_to_json(detail)
    assert [u["text"] for u in parsed["utterances"]] == [u.text for u in detail.utterances]
    if key == "en_g1":
        assert [g["recipients"] for g in parsed["suggestions"]] == [["alice", "bob"], ["bob"]]
        assert [u["verified"] for u in parsed["utterances"]][:2] == [False, True]


_TXT_LINE = re.compile(r"^\[(\d\d:\d\d\.\d\d) - (\d\d:\d\d\.\d\d)\] (.+?)( [✓✗?])?(?: \(sounds like (.+?)\))?: (.*)$")


def label(u) -> str | None:
    """Who an utterance's voice sounds like, as the text formats show it beside the mark."""
    return u.speaker_label if u.verification in ("mismatch", "unknown") else None


def clock(seconds: float) -> str:
    cs = int(round(seconds * 100))
    return f"{cs // 6000:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


@pytest.mark.parametrize("key", KEYS)
def test_txt(ro_db, library, key: str) -> None:
    detail = get_session(ro_db, library.ids[key])
    text = export_session(ro_db, OPERATOR, detail.id, "txt").data.decode("utf-8")
    lines = text.splitlines()
    assert lines[0].startswith(detail.title)
    assert lines[2] == "participants: " + ", ".join(p.name for p in detail.participants)
    body = [_TXT_LINE.match(line) for line in lines if line.startswith("[") and " - " in line[:20]]
    assert all(body)
    assert [(m[1], m[2], m[3], (m[4] or "").strip(), m[5], m[6]) for m in body] == [
        (clock(u.start), clock(u.end), u.speaker, MARKS.get(u.verification or "", ""), label(u), one_line(u.text))
        for u in detail.utterances
    ]
    # The legend where a mark shows, and only there.
    marked = any(u.verification for u in detail.utterances)
    assert any(line.startswith("verification: ✓ voice matches") for line in lines) == marked
    if detail.suggestions:
        assert lines[lines.index("Hints:") + 1 :] == [
            f"[{clock(g.at)}] (to {', '.join(g.recipients)}) {g.text}" for g in detail.suggestions
        ]


_MD_LINE = re.compile(r"^- `(\d\d:\d\d\.\d\d)` \*\*(.+?)\*\*( [✓✗?])?(?: \(sounds like (.+?)\))?: (.*)$")


@pytest.mark.parametrize("key", KEYS)
def test_md(ro_db, library, key: str) -> None:
    detail = get_session(ro_db, library.ids[key])
    text = export_session(ro_db, OPERATOR, detail.id, "md").data.decode("utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# ") and md_unescape(lines[0][2:]).startswith(detail.title)
    start = lines.index("## Transcript") + 2
    body = lines[start : start + len(detail.utterances)]
    matches = [_MD_LINE.match(line) for line in body]
    assert all(matches), body
    assert [
        (m[1], md_unescape(m[2]), (m[3] or "").strip(), m[4] and md_unescape(m[4]), md_unescape(m[5])) for m in matches
    ] == [
        (clock(u.start), u.speaker, MARKS.get(u.verification or "", ""), label(u), one_line(u.text))
        for u in detail.utterances
    ]
    assert ("✓ voice matches the account · ✗ it does not · ? undecided" in lines) == any(
        u.verification for u in detail.utterances
    )
    if detail.suggestions:
        hints = lines[lines.index("## Hints") + 2 :]
        found = [re.match(r"^- `(\d\d:\d\d\.\d\d)` \(to (.+?)\): (.*)$", h) for h in hints[: len(detail.suggestions)]]
        assert all(found), hints
        assert [(m[1], md_unescape(m[2]), md_unescape(m[3])) for m in found] == [
            (clock(g.at), ", ".join(g.recipients), g.text) for g in detail.suggestions
        ]


NASTY = "a < b && c > d --> e\n\nnext <i>line</i> *not bold* [link](x) `code` | pipe # &amp; 1. \\ 회의 北京"


def test_markup_in_speech_and_names_is_escaped_everywhere(lib, library) -> None:
    rec = CallRecorder(lib)
    sid = rec.start_session(NewSession(source="discord", guild_id="G1", title="<Q&A> --> *today*"))
    pid = rec.add_participant(sid, "Tom & <Jerry>", user_id="u1")
    rec.add_utterance(UtteranceRecord(sid, pid, 3599.9996, 3725.5, 3726.0, NASTY, verification="unknown"))
    rec.add_utterance(UtteranceRecord(sid, pid, 0.0, 0.0, 0.5, "zero length"))
    rec.add_utterance(
        UtteranceRecord(sid, pid, 10.0, 11.0, 11.5, "maybe", verification="unknown", speaker_label="*Zoë_2*")
    )
    rec.finish_session(sid, "completed", duration=3726.0)
    detail = get_session(lib, sid)
    flat = one_line(NASTY)

    # An undecided voice that sounds like someone enrolled says so, the label escaped like a name.
    assert "[00:10.00 - 00:11.00] Tom & <Jerry> ? (sounds like *Zoë_2*): maybe" in render(detail, "txt")
    assert "**Tom & \\<Jerry>** ? (sounds like \\*Zoë_2\\*): maybe" in render(detail, "md")
    detail = replace(detail, utterances=[u for u in detail.utterances if u.text != "maybe"])

    cues = parse_srt(render(detail, "srt").encode())
    assert [(c.start_ms, c.end_ms) for c in cues] == [(0, 0), (3_600_000, 3_725_500)]
    assert cues[1].lines == ["Tom & <Jerry>: " + flat.replace("-->", "->")]  # SubRip cannot escape

    notes, vtt = parse_vtt(render(detail, "vtt").encode())
    assert "-->" not in notes[0]
    assert [(c.start_ms, voice, said) for c, voice, said in vtt] == [
        (0, "Tom & <Jerry>", "zero length"),
        (3_600_000, "Tom & <Jerry>", flat),
    ]
    assert "01:00:00.000 --> 01:02:05.500" in render(detail, "vtt")  # rounds to the millisecond

    md = render(detail, "md").splitlines()
    (line,) = [line for line in md if line.startswith("- `1:00:00.00`")]  # past the hour: H:MM:SS
    m = re.match(r"^- `1:00:00\.00` \*\*(.+?)\*\* \?: (.*)$", line)
    assert m and md_unescape(m[1]) == "Tom & <Jerry>" and md_unescape(m[2]) == flat
    assert md_unescape(md[0][2:]).startswith("<Q&A> --> *today*")

    assert json.loads(render(detail, "json"))["utterances"][1]["text"] == NASTY  # JSON keeps it as said


def test_unknown_format_and_invisible_call(ro_db, library) -> None:
    from bot.errors import StalkError

    with pytest.raises(StalkError, match="unknown export format 'docx'"):
        export_session(ro_db, OPERATOR, library.ids["en_g1"], "docx")
    assert export_session(ro_db, OPERATOR, 99999, "txt") is None
    assert set(FORMATS) == {"json", "txt", "md", "srt", "vtt"}
