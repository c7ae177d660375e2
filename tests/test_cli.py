"""The command line as a newcomer first meets it: real ``python -m bot`` processes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version

import bot
from bot.cli import program_name
from bot.pipeline import CallSummary, SpeakerStats
from bot.replay import print_summary
from storage.vocab import SessionStatus
from tests.processes import REPO


def _bot(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv], capture_output=True, text=True, cwd=REPO, env=full, timeout=120
    )


def test_version_is_the_package_version() -> None:
    run = _bot("--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"S-Talk {bot.__version__}\n"
    # pyproject takes its version from bot.__version__: the installed metadata says the same.
    assert version("s-talk") == bot.__version__


def test_usage_names_the_command_the_way_it_was_run() -> None:
    run = _bot("--help")
    assert run.returncode == 0 and run.stdout.startswith("usage: python -m bot ")
    run = _bot("nosuch")
    assert run.returncode == 2 and run.stderr.endswith("(see: python -m bot --help)\n")
    assert program_name("/home/me/.venv/bin/s-talk") == "s-talk"
    assert program_name("/home/me/src/s-talk/bot/__main__.py") == "python -m bot"


def test_warnings_are_plain_lines_and_timestamped_only_with_verbose(tmp_path) -> None:
    missing = str(tmp_path / "none.db")
    env = {"STALK_ASR_BEAMSIZE": "3"}  # a misspelt setting: bot.config warns about it
    run = _bot("logs", "list", "--db", missing, env=env)
    assert run.returncode == 2
    warned = [line for line in run.stderr.splitlines() if "STALK_ASR_BEAMSIZE" in line]
    assert warned == ["warning: ignoring unknown setting STALK_ASR_BEAMSIZE (no such configuration key)"]
    run = _bot("-v", "logs", "list", "--db", missing, env=env)
    stamped = [line for line in run.stderr.splitlines() if "STALK_ASR_BEAMSIZE" in line]
    assert len(stamped) == 1 and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING bot\.config: ", stamped[0])


def test_log_lines_never_land_inside_transcript_lines(tmp_path) -> None:
    """Both streams on one file, as on a terminal: the transcript printer and a warning from
    another thread at the same time; every line comes out whole."""
    script = textwrap.dedent(
        """
        import logging, sys, threading
        from bot.cli import configure_logging
        from bot.replay import TranscriptPrinter

        configure_logging(0)
        printer = TranscriptPrinter(sys.stdout)
        log = logging.getLogger("bot.test")

        def warn():
            for i in range(400):
                log.warning("w%d", i)

        t = threading.Thread(target=warn)
        t.start()
        for i in range(400):
            printer.write(f"[line {i}] " + "x" * 300)
        t.join()
        """
    )
    out = tmp_path / "screen.txt"
    with out.open("w") as screen:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", script], stdout=screen, stderr=screen, cwd=REPO, env=env, check=True)
    lines = out.read_text().splitlines()
    assert len(lines) == 800
    bad = [line for line in lines if not re.fullmatch(r"\[line \d+\] x{300}|warning: w\d+", line)]
    assert bad == []


def test_replay_summary_counts_agree_with_their_nouns() -> None:
    one = SpeakerStats(utterances=1, rejected=0, talk_time=2.0)
    two = SpeakerStats(utterances=2, rejected=1, talk_time=3.0)
    summary = CallSummary(
        session_id=1,
        status=SessionStatus.COMPLETED,
        duration=10.0,
        wall_seconds=1.0,
        speakers={"alice": one, "bob": two},
        latencies=[],
        processing_latencies=[],
        compute_seconds=0.5,
    )
    out = io.StringIO()
    print_summary(summary, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("--- completed: call length 00:10.00, 3 utterances (1 dropped")
    assert lines[1] == "  alice    1 utterance, talk time 00:02.00"
    assert lines[2] == "  bob      2 utterances, talk time 00:03.00"
    one_only = CallSummary(1, SessionStatus.COMPLETED, 5.0, 1.0, {"alice": one}, [], [], 0.1)
    out = io.StringIO()
    print_summary(one_only, out)
    assert ", 1 utterance (0 dropped" in out.getvalue()
