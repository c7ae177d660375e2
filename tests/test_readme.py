"""README.md is the front door: the commands it gives are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands(section: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", body, re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    install, tests = _commands("Set-up")[:2]
    assert "pytest" in tests and "pytest" not in install
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, "the test command in README.md and the one in .ci/run differ"


def test_every_command_works_on_a_fresh_machine_without_an_activated_environment() -> None:
    # Debian's python is externally managed and has no 'python': each command makes its own
    # virtual environment with python3 and uses the tools inside it.
    for command in _commands("Set-up")[:2]:
        assert command.startswith("python3 -m venv .venv && ")
        tools = re.findall(r"(?:^|&& )(?:\S+=\S+ )*(\S+)", command)
        assert all(t == "python3" or t.startswith(".venv/bin/") for t in tools), tools
