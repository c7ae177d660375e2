"""Configuration: defaults, config.example.toml, STALK_* overrides, and the errors a user sees.

Errors are checked end to end through ``bot.cli.main``: exit code 2, one ``error:`` line on
stderr naming the key, the value and what is allowed, and no database created.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from pathlib import Path

import pytest

from bot.config import Config, describe_defaults, load_config
from bot.errors import ConfigError
from tests.cli import one_error_line, run_cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
SHARED = Path(os.environ.get("STALK_SHARED_DIR", REPO.parent / "shared"))
JFK = SHARED / "data" / "misc" / "jfk.flac"


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STALK_* setting of the machine running the tests leaks in; the database is in tmp_path."""
    for key in list(os.environ):
        if key.startswith("STALK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STALK_STORAGE_URL", str(tmp_path / "env.db"))


def replay_with_config(capsys, tmp_path: Path, *extra: str) -> tuple[int, str, str, Path]:
    """A replay of a real recording that must stop at the configuration."""
    db = tmp_path / "calls.db"
    code, out, err = run_cli(capsys, "replay", "--speed", "0", "--db", str(db), *extra, f"a={JFK}")
    return code, out, err, db


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _help_comments(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> the comment lines right above the key, joined into one line."""
    found: dict[tuple[str, str], str] = {}
    section, comment = None, []
    for line in text.splitlines():
        stripped = line.strip()
        if m := re.fullmatch(r"\[(\w+)\]", stripped):
            section, comment = m.group(1), []
        elif stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif m := re.match(r"(\w+)\s*=", stripped):
            found[(section, m.group(1))] = " ".join(comment)
            comment = []
        else:
            comment = []
    return found


# -- defaults and the example file ------------------------------------------------------------


def test_defaults_load_without_file_or_environment() -> None:
    config = load_config(None, env={})
    assert config == Config()
    for section, key, default, _help in describe_defaults():
        assert getattr(getattr(config, section), key) == default
    # The documented speed-critical defaults: greedy decoding; device and precision chosen for
    # the machine (int8 on a CPU, float16 on a GPU: tests/test_device.py).
    assert (config.asr.beam_size, config.asr.compute_type, config.asr.device) == (1, "auto", "auto")


def test_default_model_search_never_looks_beside_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    """A user's first run must download the model (with the progress the README promises), not
    pick up whatever ../shared/models happens to hold next to where it was started."""
    from bot.asr.model import resolve_model
    from bot.errors import ModelError

    dirs = Config().models.dirs
    assert dirs and all(d.startswith(("~", "/")) for d in dirs)
    repo = Path(__file__).resolve().parents[1]
    assert (repo.parent / "shared" / "models" / "whisper-base" / "model.bin").is_file()  # would be found
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="download"):
        resolve_model("base", dirs)


def test_example_file_parses_to_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == Config()


def test_example_file_documents_every_key_with_its_default_and_help() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    rows = describe_defaults()
    documented = {(s, k) for s, section in data.items() for k in section}
    assert documented == {(s, k) for s, k, _, _ in rows}
    comments = _help_comments(text)
    for section, key, default, help_text in rows:
        assert data[section][key] == default, f"{section}.{key}"
        assert comments[(section, key)] == help_text, f"{section}.{key}: comment differs from describe_defaults()"


# -- environment overrides ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "raw", "section", "key", "expected"),
    [
        ("STALK_ASR_MODEL", "/models/whisper-small", "asr", "model", "/models/whisper-small"),
        ("STALK_ASR_BEAM_SIZE", "3", "asr", "beam_size", 3),
        ("STALK_ASR_HOTWORDS", "false", "asr", "hotwords", False),
        ("STALK_ASR_HOTWORDS", "0", "asr", "hotwords", False),
        ("STALK_ASR_HALLUCINATION_FILTER", "off", "asr", "hallucination_filter", False),
        ("STALK_ASR_LANGUAGE", " KO ", "asr", "language", "ko"),
        ("STALK_VAD_THRESHOLD", "0.35", "vad", "threshold", 0.35),
        ("STALK_VAD_MAX_UTTERANCE_S", "20", "vad", "max_utterance_s", 20.0),
        ("STALK_REPLAY_SPEED", "0", "replay", "speed", 0.0),
        ("STALK_STORAGE_URL", "postgresql://u@h/db", "storage", "url", "postgresql://u@h/db"),
        ("STALK_MODELS_DIRS", f"/a{os.pathsep}/b", "models", "dirs", ["/a", "/b"]),
        ("STALK_MODELS_DIRS", "/a, /b ,", "models", "dirs", ["/a", "/b"]),
        ("STALK_MODELS_DIRS", '["/with space", "/x"]', "models", "dirs", ["/with space", "/x"]),
        ("STALK_ASR_DOWNLOAD_ROOT", "", "asr", "download_root", ""),
    ],
)
def test_environment_overrides_each_type(var, raw, section, key, expected) -> None:
    config = load_config(None, env={var: raw})
    value = getattr(getattr(config, section), key)
    assert value == expected and type(value) is type(expected)
    # Everything else stays at its default.
    others = [(s, k, d) for s, k, d, _ in describe_defaults() if (s, k) != (section, key)]
    assert all(getattr(getattr(config, s), k) == d for s, k, d in others)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[asr]\nbeam_size = 2\nmodel = "small"\n')
    config = load_config(path, env={"STALK_ASR_BEAM_SIZE": "3"})
    assert (config.asr.beam_size, config.asr.model) == (3, "small")


def test_unknown_environment_setting_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        load_config(None, env={"STALK_ASR_BEAMSIZE": "3"})
    assert any("STALK_ASR_BEAMSIZE" in r.getMessage() for r in caplog.records)


def test_environment_reaches_the_replay_command(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STALK_ASR_MODEL", str(tmp_path / "no-such-model"))
    code, _, err, db = replay_with_config(capsys, tmp_path)
    assert code == 2
    assert "no-such-model" in one_error_line(err)


# -- invalid values: file and environment ----------------------------------------------------

INVALID = [
    # section, key, TOML literal, environment text, shown value, part of "allowed"
    ("asr", "beam_size", "0", "0", "0", "an integer from 1 to 10"),
    ("asr", "beam_size", '"3"', "3.5", None, "an integer from 1 to 10"),
    ("asr", "compute_type", '"int4"', "int4", "'int4'", "one of auto, int8, int8_float32"),
    ("asr", "language", '"xx"', "xx", "'xx'", "a Whisper language code such as en"),
    ("asr", "language", '"english"', "english", "'english'", "a Whisper language code such as en"),
    ("asr", "device", '"tpu"', "tpu", "'tpu'", "one of auto, cpu, cuda"),
    ("asr", "hotwords", '"yes please"', "yes please", "'yes please'", "true or false"),
    ("asr", "model", '""', " ", None, "non-empty text"),
    ("vad", "threshold", "2", "2", "2", "a number from 0.05 to 0.95"),
    ("vad", "threshold", "nan", "nan", "nan", "a number from 0.05 to 0.95"),
    ("vad", "min_silence_ms", "50", "50", "50", "an integer from 100 to 5000"),
    ("replay", "speed", "-1", "-1", "-1", "a number from 0 to 1000"),
    ("storage", "url", '""', "", "''", "non-empty text"),
    ("models", "dirs", '"/one/dir"', "[1, 2]", None, "a list of text"),
]


@pytest.mark.parametrize(
    ("section", "key", "toml", "env", "shown", "allowed"), INVALID, ids=[f"{s}.{k}={t}" for s, k, t, *_ in INVALID]
)
def test_invalid_value_in_file_is_one_clear_line(
    capsys, tmp_path, monkeypatch, section, key, toml, env, shown, allowed
) -> None:
    monkeypatch.delenv("STALK_STORAGE_URL")  # the environment would win over the file's value
    path = write_toml(tmp_path, f"[{section}]\n{key} = {toml}\n")
    code, out, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2
    assert f"for {section}.{key} (from {path})" in line
    assert allowed in line.split("allowed: ", 1)[1]
    if shown is not None:
        assert f"invalid value {shown}" in line.replace(".0 for", " for")
    assert not db.exists() and not (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("section", "key", "toml", "env", "shown", "allowed"), INVALID, ids=[f"{s}.{k}={e!r}" for s, k, _, e, *_ in INVALID]
)
def test_invalid_value_in_environment_is_one_clear_line(
    capsys, tmp_path, monkeypatch, section, key, toml, env, shown, allowed
) -> None:
    var = f"STALK_{section}_{key}".upper()
    monkeypatch.setenv(var, env)
    code, out, err, db = replay_with_config(capsys, tmp_path)
    line = one_error_line(err)
    assert code == 2
    assert f"for {section}.{key} (from environment variable {var})" in line
    assert allowed in line.split("allowed: ", 1)[1]
    assert repr(env.strip().lower() if key == "language" else env) in line or env in line
    assert not db.exists() and not (tmp_path / "env.db").exists()


def test_nan_is_rejected_even_though_it_compares_false_with_every_bound() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"STALK_REPLAY_SPEED": "nan"})
    assert "replay.speed" in str(info.value)
    assert math.isfinite(load_config(None, env={"STALK_REPLAY_SPEED": "1e3"}).replay.speed)


# -- broken files and options ---------------------------------------------------------------


def test_unknown_section_names_it_and_the_allowed_ones(capsys, tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[asrr]\nmodel = "base"\n')
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2
    assert "unknown section [asrr]" in line and str(path) in line
    assert "allowed: asr, vad, storage, models, replay" in line
    assert not db.exists()


def test_unknown_key_names_it_and_the_allowed_ones(capsys, tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[asr]\nbeam = 3\n")
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2
    assert "unknown key asr.beam" in line
    assert "beam_size" in line.split("allowed:")[1]
    assert not db.exists()


def test_a_key_outside_any_section(capsys, tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'asr = "base"\n')
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2 and "must be a section [asr]" in line
    assert not db.exists()


def test_invalid_toml_says_where(capsys, tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[asr]\nmodel = base\n")
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2
    assert f"configuration file {path} is not valid TOML" in line
    assert "line 2" in line and "config.example.toml" in line
    assert not db.exists()


def test_missing_config_file(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(missing))
    line = one_error_line(err)
    assert code == 2
    assert f"configuration file {missing} not found" in line and "config.example.toml" in line
    assert not db.exists()


def test_bad_language_on_the_command_line(capsys, tmp_path: Path) -> None:
    code, _, err, db = replay_with_config(capsys, tmp_path, "--language", "xx")
    line = one_error_line(err)
    assert code == 2
    assert "invalid value 'xx' for asr.language (from the command line)" in line
    assert "allowed: auto" in line and "a Whisper language code such as en" in line
    assert not db.exists()


def test_command_line_language_is_validated_like_the_file() -> None:
    config = load_config(None, env={})
    assert config.replace("asr", language=" ZH ").asr.language == "zh"
    with pytest.raises(ConfigError, match="unknown configuration key asr.lang"):
        config.replace("asr", lang="en")


def test_config_file_that_is_not_utf8(capsys, tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[asr]\nmodel = "modèle"\n'.encode("latin-1"))
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2 and f"configuration file {path} is not UTF-8 text" in line and "save it as UTF-8" in line
    assert not db.exists()


def test_config_path_that_is_a_directory(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(folder))
    line = one_error_line(err)
    assert code == 2 and f"configuration file {folder} is a directory" in line and "Errno" not in line
    assert not db.exists()


def test_duplicate_key_is_invalid_toml(capsys, tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[asr]\nbeam_size = 1\nbeam_size = 2\n")
    code, _, err, db = replay_with_config(capsys, tmp_path, "--config", str(path))
    line = one_error_line(err)
    assert code == 2 and "is not valid TOML" in line and "line 3" in line
    assert not db.exists()
