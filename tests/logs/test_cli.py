"""``python -m bot logs ...`` on the recorded calls, through bot.cli.main."""

from __future__ import annotations

import io
import json
import os
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

import bot.cli
from storage import get_session, open_database
from storage.export import short_clock
from storage.models import CallSession, utcnow
from tests.cli import one_error_line, run_cli
from tests.logs.test_export import parse_srt, parse_vtt


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_show_prints_the_transcript_with_marks(capsys, library) -> None:
    sid = library.ids["en_g1"]
    code, out, err = run_cli(capsys, "logs", "show", str(sid), "--db", str(library.path))
    assert code == 0, err
    with open_database(str(library.path)) as db:
        detail = get_session(db, sid)
    lines = out.splitlines()
    assert lines[0].startswith("Weekly sync")
    body = [line for line in lines if re.match(r"\[\d\d:\d\d\.\d\d - ", line)]
    assert len(body) == len(detail.utterances)
    assert lines[-2:] == [
        "[00:20.00] (to alice, bob) Ask bob about the reciter",
        "[00:25.00] (to bob) Tell alice about the eunuch",
    ]
    # The voice that did not match says whom it sounds like, as replay printed it.
    assert body[0].split("] ", 1)[1] == f"alice ✗ (sounds like bob): {detail.utterances[0].text}"
    assert body[1].split("] ", 1)[1] == f"bob ✓: {detail.utterances[1].text}"


def test_search_prints_session_speaker_time_and_text(capsys, library) -> None:
    code, out, err = run_cli(capsys, "logs", "search", "通车", "--db", str(library.path))
    assert code == 0, err
    *hits, summary = out.splitlines()
    assert len(hits) == 2 and summary == "-- 2 utterances"
    assert hits[0].startswith(f"#{library.ids['zh_g2']} ") and hits[1].startswith(f"#{library.ids['zh_g1']} ")
    with open_database(str(library.path)) as db:
        last = get_session(db, library.ids["zh_g1"]).utterances[-1]
    assert "通车" in last.text
    assert all(f"[{short_clock(last.start)}] 李娜: {last.text}" in h for h in hits)

    code, out, _ = run_cli(capsys, "logs", "search", "법원", "--context", "1", "--db", str(library.path))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3  # the utterance before, the hit (marked >), the summary
    assert lines[0].startswith("   #") and lines[1].startswith(">  #") and "서준: " in lines[1]

    code, out, _ = run_cli(capsys, "logs", "search", "reciter", "--limit", "3", "--db", str(library.path))
    assert out.splitlines()[-1] == "-- 1-3 of 4 utterances; --page 2 for more"
    code, out, _ = run_cli(
        capsys, "logs", "search", "reciter", "--limit", "3", "--page", "2", "--db", str(library.path)
    )
    assert len(out.splitlines()) == 2 and out.splitlines()[-1] == "-- 4-4 of 4 utterances"
    code, out, _ = run_cli(capsys, "logs", "search", "zebra", "--db", str(library.path))
    assert (code, out) == (0, "no utterance contains 'zebra'\n")
    code, out, err = run_cli(capsys, "logs", "search", "  ", "--db", str(library.path))
    assert code == 2 and one_error_line(err).startswith("error: empty search")


@pytest.mark.parametrize("fmt", ["json", "txt", "md", "srt", "vtt"])
def test_export_every_format_to_a_file(capsys, library, tmp_path: Path, fmt: str) -> None:
    sid = library.ids["zh_g1"]
    target = tmp_path / f"call.{fmt}"
    code, out, err = run_cli(
        capsys, "logs", "export", str(sid), "--format", fmt, "-o", str(target), "--db", str(library.path)
    )
    assert code == 0 and out == "" and str(target) in err
    data = target.read_bytes()
    assert "通车".encode() in data
    if fmt == "srt":
        assert len(parse_srt(data)) == len(library.mandarin_script)
    elif fmt == "vtt":
        assert [voice for _, voice, _ in parse_vtt(data)[1]] == [spk for spk, _ in library.mandarin_script]
    elif fmt == "json":
        assert json.loads(data)["session"]["id"] == sid


def test_delete_asks_and_needs_a_terminal_or_yes(capsys, lib_path: Path, library, monkeypatch) -> None:
    sid = library.ids["ko_g3"]
    db = str(lib_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    code, out, err = run_cli(capsys, "logs", "delete", str(sid), "--db", db)
    assert code == 2 and out == ""
    assert one_error_line(err) == (
        f"error: refusing to delete session {sid} without confirmation: pass --yes (standard input is not a terminal)"
    )
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, _ = run_cli(capsys, "logs", "delete", str(sid), "--db", db)
    assert code == 1 and out.endswith("nothing deleted\n") and "[y/N]" in out
    with open_database(db) as d:
        assert get_session(d, sid) is not None
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = run_cli(capsys, "logs", "delete", str(sid), "--db", db)
    assert code == 0, err
    asked, said = out.split("[y/N] ")
    n = len(library.korean_script)
    assert asked.startswith(f"Delete session {sid} (스터디, ") and asked.endswith(f"with its {n} utterances for good? ")
    assert said.startswith(f"deleted session {sid} (스터디, ") and said.endswith(f"): {n} utterances, 0 suggestions\n")
    code, out, _ = run_cli(capsys, "logs", "search", "법원", "--db", db)
    assert (code, out) == (0, "no utterance contains '법원'\n")  # gone from the search index too
    code, _, err = run_cli(capsys, "logs", "delete", str(sid), "--yes", "--db", db)
    assert code == 2 and one_error_line(err).startswith(f"error: no session {sid} in ")


def test_delete_yes(capsys, lib_path: Path, library) -> None:
    sid = library.ids["en_g1"]
    code, out, err = run_cli(capsys, "logs", "delete", str(sid), "-y", "--db", str(lib_path))
    assert code == 0, err
    assert out.strip().endswith(f"{len(library.english_script)} utterances, 2 suggestions")
    code, out, _ = run_cli(capsys, "logs", "show", str(sid), "--db", str(lib_path))
    assert code == 2


def test_purge(capsys, lib_path: Path, library, tmp_path: Path, monkeypatch) -> None:
    with open_database(str(lib_path)) as db, db.session() as s, s.begin():
        s.execute(
            update(CallSession)
            .where(CallSession.id == library.ids["zh_g1"])
            .values(started_at=utcnow() - timedelta(days=10))
        )
    db_arg = ("--db", str(lib_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run_cli(capsys, "logs", "purge", "--older-than", "7", *db_arg)
    assert code == 2 and "refusing to purge without confirmation" in one_error_line(err)
    # No age given and the configuration keeps everything: nothing to do, said clearly.
    code, _, err = run_cli(capsys, "logs", "purge", "--yes", *db_arg)
    assert code == 2 and "max_age_days is 0" in one_error_line(err)
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error, as one line
        bot.cli.main(["logs", "purge", "--older-than", "-3", "--yes", *db_arg])
    assert exited.value.code == 2 and "a number of days above 0" in one_error_line(capsys.readouterr().err)
    code, out, err = run_cli(capsys, "logs", "purge", "--older-than", "7", "--yes", *db_arg)
    assert code == 0, err
    assert out.startswith("deleted 1 session started before ") and out.rstrip().endswith(
        f"{len(library.mandarin_script)} utterances, 0 suggestions"
    )
    config = tmp_path / "s-talk.toml"
    config.write_text("[retention]\nmax_age_days = 1\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "logs", "purge", "--yes", "--config", str(config), *db_arg)
    assert code == 0 and out.startswith("deleted 0 sessions"), err
    code, out, _ = run_cli(capsys, "logs", "list", *db_arg)
    assert len(out.splitlines()) == 1 + len(library.ids) - 1


def test_delete_refuses_a_call_in_progress(capsys, lib_path: Path, library) -> None:
    sid = library.ids["ko_g3"]
    with open_database(str(lib_path)) as db, db.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == sid).values(status="active"))
    code, out, err = run_cli(capsys, "logs", "delete", str(sid), "--yes", "--db", str(lib_path))
    assert code == 2 and out == ""
    # The library was recorded by this very process, which still runs.
    assert one_error_line(err) == (
        f"error: session {sid} is still being recorded by process {os.getpid()} on {socket.gethostname()} "
        "(status active), nothing deleted: end that call first (Ctrl+C, or /leave in Discord), then delete it"
    )
    with open_database(str(lib_path)) as db:
        assert get_session(db, sid) is not None


def test_common_options_before_or_after_the_command(capsys, library, tmp_path: Path) -> None:
    db = str(library.path)
    code, after, err = run_cli(capsys, "logs", "list", "--db", db)
    assert code == 0, err
    # Before the command, between `logs` and its action, and given twice (the later counts).
    for argv in (
        ("--db", db, "logs", "list"),
        ("logs", "--db", db, "list"),
        ("--db", str(tmp_path / "missing.db"), "logs", "list", "--db", db),
    ):
        assert run_cli(capsys, *argv) == (0, after, ""), argv
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "missing.db"), "logs", "list")
    assert code == 2 and one_error_line(err).startswith(f"error: no database at {tmp_path / 'missing.db'}")


def test_counts_of_one_read_in_the_singular(capsys, library, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "logs", "search", "법원", "--db", str(library.path))
    assert code == 0 and out.splitlines()[-1] == "-- 1 utterance"
    sid = library.ids["ko_g3"]
    target = tmp_path / "one.txt"
    code, _, err = run_cli(capsys, "logs", "export", str(sid), "-o", str(target), "--db", str(library.path))
    assert code == 0 and err == f"wrote session {sid} ({len(library.korean_script)} utterances) to {target}\n"


def test_search_shows_the_words_found_in_bold(capsys, library) -> None:
    db = str(library.path)
    code, out, _ = run_cli(capsys, "logs", "search", "reciter", "--color", "always", "--db", db)
    *hits, _ = out.splitlines()
    assert code == 0 and len(hits) == 4
    for line in hits:
        found = re.findall(r"\x1b\[1m(.*?)\x1b\[22m", line)
        assert found and all(w.lower() == "reciter" for w in found), line
        assert re.sub(r"\x1b\[(1|22)m", "", line).count("\x1b") == 0  # no other escape reaches the terminal
    # Not a terminal (a pipe, a file) or --color never: the same lines without the escapes.
    plain_out = run_cli(capsys, "logs", "search", "reciter", "--db", db)[1]
    assert "\x1b" not in plain_out and plain_out == re.sub(r"\x1b\[(1|22)m", "", out)
    assert run_cli(capsys, "logs", "search", "reciter", "--color", "never", "--db", db)[1] == plain_out
