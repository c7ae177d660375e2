"""`python -m bot doctor` (each check failing in turn, with its fix; what only costs a feature is
a warning) and `python -m bot run`'s start-up errors."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.doctor import CHECKS
from tests.bot.discord_rest import DiscordRest
from tests.calls import offline_config, tiny_en_dir
from tests.cli import one_error_line, run_cli

NAMES = [name for name, _ in CHECKS]


@pytest.fixture
def healthy(monkeypatch, tmp_path):
    """An environment where every check passes: token set, the offline tiny.en model."""
    monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
    monkeypatch.setenv("STALK_ASR_MODEL", tiny_en_dir())
    monkeypatch.setenv("STALK_HINTS_ENABLED", "false")  # no LLM server needed (its own tests below)
    return tmp_path / "doctor.db"


def _lines(out: str) -> dict[str, list[str]]:
    """check name -> its line and fix line."""
    result: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith(("ok  ", "FAIL", "WARN")):
            current = line[6:].split(":", 1)[0]
            result[current] = [line]
        elif line.startswith("      fix:") and current:
            result[current].append(line)
    return result


def test_doctor_all_pass_and_database_check_leaves_nothing(healthy, capsys) -> None:
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    lines = _lines(out)
    assert code == 0 and list(lines) == NAMES, out
    assert all(v[0].startswith("ok") for v in lines.values())
    assert "libopus" in lines["opus"][0] and "migrated, written and read back" in lines["database"][0]
    # Where each model was found.
    where = Path(tiny_en_dir()).resolve()
    assert f"faster-whisper {tiny_en_dir()!r} from {where} loads (" in lines["whisper model"][0]
    assert re.search(r"speaker model: \S+ from /\S+\.onnx loads", lines["speaker model"][0]), lines["speaker model"]
    assert "hints are off" in lines["llm server"][0]
    with sqlite3.connect(healthy) as conn:
        assert conn.execute("SELECT count(*) FROM guild_settings").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def _only_failure(out: str, name: str) -> list[str]:
    lines = _lines(out)
    assert list(lines) == NAMES, out
    failed = [n for n, v in lines.items() if v[0].startswith("FAIL")]
    assert failed == [name], out
    assert len(lines[name]) == 2, f"a failure must come with its fix:\n{out}"
    assert f"failed: {name}" in out.splitlines()[-1]
    return lines[name]


def test_doctor_missing_token(healthy, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN")
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "discord token")
    assert code == 1 and "DISCORD_TOKEN is not set" in line and "export DISCORD_TOKEN=" in fix


def test_doctor_opus_library_missing(healthy, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STALK_DISCORD_OPUS_LIBRARY", str(tmp_path / "libopus.so.0"))
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "opus")
    assert code == 1 and "cannot load libopus" in line and "apt-get install -y libopus0" in fix


def test_doctor_davey_unusable(healthy, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "davey", None)  # what Python does for a module that failed to import
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "davey")
    assert code == 1 and "davey" in line and "pip install 'davey==0.1.7'" in fix


def test_doctor_model_missing(healthy, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STALK_ASR_MODEL", str(tmp_path / "no-such-model"))
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "whisper model")
    assert code == 1 and "no-such-model" in line and fix


def test_doctor_json_for_scripts(healthy, capsys, tmp_path, monkeypatch) -> None:
    import json

    code, out, _ = run_cli(capsys, "doctor", "--json", "--db", str(healthy))
    report = json.loads(out)  # the whole output is one JSON object
    assert code == 0 and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == NAMES
    assert {c["status"] for c in report["checks"]} == {"ok"}
    assert "migrated, written and read back" in report["checks"][NAMES.index("database")]["detail"]

    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello, this is not a database " * 100)
    monkeypatch.delenv("DISCORD_TOKEN")
    code, out, _ = run_cli(capsys, "doctor", "--json", "--db", str(not_db))
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["database"]["status"] == "fail" and "--db" in by_name["database"]["fix"]
    assert by_name["discord token"]["status"] == "fail" and by_name["opus"]["status"] == "ok"


def test_doctor_database_unusable(healthy, capsys, tmp_path) -> None:
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello, this is not a database " * 100)
    code, out, _ = run_cli(capsys, "doctor", "--db", str(not_db))
    line, fix = _only_failure(out, "database")
    assert code == 1 and "not a database" in line and "--db" in fix
    assert not_db.read_text().startswith("hello")  # left alone


@pytest.fixture(scope="module")
def llama_server():
    """The real llama-cpp-python server (SmolLM2-135M-Instruct), as in the hints tests."""
    from tests.hints.servers import LlamaServer

    server = LlamaServer()
    yield server
    server.close()


def _only_warning(out: str, name: str) -> list[str]:
    """Without an LLM the bot still sends hints (the built-in ones): a warning, not a failure."""
    lines = _lines(out)
    assert list(lines) == NAMES, out
    assert [n for n, v in lines.items() if not v[0].startswith("ok")] == [name], out
    assert lines[name][0].startswith("WARN") and len(lines[name]) == 2, out
    assert "meanwhile hints use the built-in suggestions" in lines[name][0]
    assert out.splitlines()[-1] == f"6 of 7 checks passed; warnings (the bot runs, with less): {name}"
    return lines[name]


def test_doctor_llm_server_unreachable(healthy, capsys, monkeypatch) -> None:
    from tests.hints.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    monkeypatch.setenv("STALK_HINTS_ENABLED", "true")
    monkeypatch.setenv("STALK_LLM_BASE_URL", url)
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_warning(out, "llm server")
    assert code == 0 and f"no LLM server answers at {url}" in line
    assert "ollama pull llama3.1:8b" in fix and "base_url" in fix and "[hints] enabled = false" in fix


def test_doctor_llm_model_missing_lists_what_the_server_has(healthy, capsys, monkeypatch, llama_server) -> None:
    monkeypatch.setenv("STALK_HINTS_ENABLED", "true")
    monkeypatch.setenv("STALK_LLM_BASE_URL", llama_server.base_url)  # the default model: llama3.1:8b
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_warning(out, "llm server")
    assert code == 0 and "'llama3.1:8b' is not on the LLM server" in line and "(it has: smollm2-135m)" in line
    assert "ollama pull llama3.1:8b" in fix and "[llm] model" in fix


def test_doctor_llm_that_lists_its_model_but_fails_to_answer(healthy, capsys, monkeypatch) -> None:
    from tests.hints.servers import ScriptedServer

    server = ScriptedServer()  # lists 'scripted'; every chat request: HTTP 500
    try:
        monkeypatch.setenv("STALK_HINTS_ENABLED", "true")
        monkeypatch.setenv("STALK_LLM_BASE_URL", server.url("error500"))
        monkeypatch.setenv("STALK_LLM_MODEL", "scripted")
        code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    finally:
        server.close()
    line, fix = _only_warning(out, "llm server")
    assert code == 0
    assert "'scripted' is listed at" in line and "but a one-token chat request failed: HTTP 500" in line
    assert "model crashed" in line and "server's log" in fix
    ((_, body),) = server.requests
    assert body["max_tokens"] == 1


def test_doctor_llm_real_server_ok(healthy, capsys, monkeypatch, llama_server) -> None:
    monkeypatch.setenv("STALK_HINTS_ENABLED", "true")
    monkeypatch.setenv("STALK_LLM_BASE_URL", llama_server.base_url)
    monkeypatch.setenv("STALK_LLM_MODEL", llama_server.model)
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    lines = _lines(out)
    assert code == 0 and all(v[0].startswith("ok") for v in lines.values()), out
    assert re.fullmatch(
        rf"ok    llm server: 'smollm2-135m' served at {re.escape(llama_server.base_url)} "
        r"\(answered a one-token chat request in \d+\.\d s\)",
        lines["llm server"][0],
    ), lines["llm server"]


def test_doctor_says_where_the_default_auto_device_runs_whisper(healthy, capsys) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU")
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line = _lines(out)["whisper model"][0]
    assert code == 0 and line.startswith("ok"), out
    assert "loads (cpu, int8; asr.device auto: no CUDA GPU seen by CTranslate2" in line, line
    assert "asr.compute_type auto: int8 on cpu" in line, line


def test_doctor_cuda_on_a_machine_without_it_says_what_it_has(healthy, capsys, monkeypatch) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.setenv("STALK_ASR_DEVICE", "cuda")
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "whisper model")
    assert code == 1 and "asr.device is cuda, but this machine has no CUDA GPU" in line
    assert "set asr.device = cpu" in fix and "int8" in fix and "delete" not in fix


def test_run_without_token_stops_at_once(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    code, out, err = run_cli(capsys, "run", "--db", str(tmp_path / "x.db"))
    line = one_error_line(err)
    assert code == 2 and "DISCORD_TOKEN is not set" in line and "DISCORD_TOKEN=<token> python -m bot run" in line
    assert not (tmp_path / "x.db").exists()  # nothing done before the token check


async def test_a_refused_token_is_one_clear_error(tiny_en, tmp_path) -> None:
    from bot.commands.run import serve
    from bot.errors import StalkError
    from storage.db import open_database

    rest = DiscordRest(bot_user={"id": "1", "username": "x", "discriminator": "0", "avatar": None}, application_id=2)
    await rest.start()
    rest.fail_paths["/users/@me"] = 401
    db = open_database(str(tmp_path / "x.db"))
    try:
        with pytest.raises(StalkError, match="Discord refused the token in DISCORD_TOKEN"):
            await asyncio.wait_for(serve(offline_config(), db, "bad-token", tiny_en), 30)
    finally:
        db.close()
        await rest.stop()


async def test_sigterm_stops_the_bot_cleanly(tiny_en, tmp_path) -> None:
    """The bot logs in and connects to the (silent) gateway; SIGTERM ends it cleanly."""
    import os
    import signal

    from bot.commands.run import serve
    from storage.db import open_database

    rest = DiscordRest(
        bot_user={"id": "1", "username": "x", "discriminator": "0", "avatar": None, "bot": True}, application_id=2
    )
    await rest.start()
    db = open_database(str(tmp_path / "x.db"))
    try:
        task = asyncio.create_task(serve(offline_config(), db, "good-token", tiny_en))
        await rest.wait_for(lambda reqs: any(r.path == "/gateway-ws" for r in reqs))
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 30)  # returns instead of dying: the handler ran
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # and was removed again
    finally:
        db.close()
        await rest.stop()
