"""Running the command line in-process and reading what the user sees."""

from __future__ import annotations

import pytest

import bot.cli


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = bot.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line a bad input must produce."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
