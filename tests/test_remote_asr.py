"""asr.backend = "remote": utterances transcribed by a real OpenAI-compatible server on loopback.

The server is PyPI ``faster-whisper-server`` 0.0.3 (FastAPI + uvicorn over faster-whisper, the
``/v1/audio/transcriptions`` shape of OpenAI's API), started offline (HF_HUB_OFFLINE=1) on the
multilingual whisper-base from ../shared/models. The failure paths use real sockets: a server
stopped mid-call, a port nobody listens on, a listener that accepts and never answers.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bot.asr.remote import RemoteSettings, RemoteTranscriber
from bot.asr.transcriber import DecodeOptions, Request
from bot.replay import Track, replay
from storage import get_session, open_database
from tests.bounds import at_most
from tests.calls import (
    base_dir,
    build_call,
    librispeech_files,
    librispeech_refs,
    load16k,
    offline_config,
    shared,
    texts_by_turn,
    wer,
)

pytestmark = pytest.mark.slow  # a server process and a real model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WhisperServer:
    """faster-whisper-server on a free loopback port, ready once /health answers."""

    def __init__(self, tmp: Path, model_dir: str, timeout: float = 120.0) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = tmp / f"fws-{self.port}.yaml"
        # The model is named whisper-1: the server reads the form field model_name, which the
        # OpenAI client does not send, so its default (whisper-1) picks the model.
        config.write_text(
            "models:\n"
            "  - name: whisper-1\n"
            f"    path: {model_dir}\n"
            "    model_options: {device: cpu, compute_type: int8, cpu_threads: 2}\n",
            encoding="utf-8",
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "faster_whisper_server", "--config", str(config)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"faster-whisper-server exited: {self.proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"faster-whisper-server did not answer /health within {timeout:g} s")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = WhisperServer(tmp_path_factory.mktemp("fws"), base_dir())
    yield s
    s.close()


def settings(base_url: str, **kw) -> RemoteSettings:
    return RemoteSettings(base_url=base_url, model="whisper-1", **{"timeout_seconds": 60.0, **kw})


def english(n: int = 4):
    refs = librispeech_refs()
    files = librispeech_files("2609")[:n]
    return [load16k(f) for f in files], [refs[f.stem] for f in files]


def test_real_speech_is_transcribed_by_the_server(server):
    remote = RemoteTranscriber(settings(server.base_url))  # no local model at all
    audio, refs = english()
    options = DecodeOptions(language="en")
    transcripts = remote.transcribe_batch([Request(a) for a in audio], options)
    # whisper-base on LibriSpeech test-other: 11% WER over 100 utterances (../shared/data/README.md).
    at_most("remote base WER, 4 LibriSpeech utterances", wer(refs, [t.text for t in transcripts]), 0.35)
    assert all(t.language == "en" and t.kept for t in transcripts)
    assert remote.stats.remote == 4 and remote.stats.fallback == 0 and remote.stats.failures == 0


def test_the_language_is_passed_through(server):
    remote = RemoteTranscriber(settings(server.base_url))
    clip = load16k(shared("data", "korean", "common_voice_ko_35844024.wav"))
    korean = remote.transcribe(Request(clip), DecodeOptions(language="ko"))
    assert korean.language == "ko" and korean.language_probability == 1.0
    assert sum("\uac00" <= c <= "\ud7a3" for c in korean.text) >= 3, korean.text  # Hangul syllables
    detected = remote.transcribe(Request(clip), DecodeOptions(language=None))
    assert detected.language == "ko"  # the server's own detection, when the call names none


def test_a_replayed_call_goes_through_the_remote_backend_in_call_time(server, tmp_path):
    refs = librispeech_refs()
    a, b = librispeech_files("1688")[:2], librispeech_files("2033")[:2]
    script = [(name, f, refs[f.stem]) for pair in zip(a, b) for name, f in zip(("ann", "ben"), pair)]
    tracks, placed = build_call(tmp_path, script, gap=0.8)
    config = offline_config(STALK_ASR_BACKEND="remote", STALK_ASR_REMOTE_URL=server.base_url, STALK_ASR_LANGUAGE="en")
    summary = replay(
        config,
        [Track(n, str(p)) for n, p in tracks.items()],
        db_url=str(tmp_path / "call.db"),
        speed=0,
        out=io.StringIO(),
        hints=False,
    )
    db = open_database(str(tmp_path / "call.db"))
    detail = get_session(db, summary.session_id)
    db.close()
    assert detail.asr_model == "remote:whisper-1"
    at_most("remote replay WER", wer([p.text for p in placed], texts_by_turn(detail.utterances, placed)), 0.35)
    # Virtual call time counts the round trip: every transcript is stored after its words ended.
    assert all(u.transcribed_at > u.end for u in detail.utterances)
    assert len(summary.queue_delays) == len(detail.utterances) and min(summary.queue_delays) >= 0


def test_a_server_stopped_mid_call_falls_back_to_the_local_model_losing_nothing(tmp_path, tiny_en, caplog):
    own = WhisperServer(tmp_path, base_dir())
    loaded = []

    def local():
        loaded.append(True)
        return tiny_en

    remote = RemoteTranscriber(settings(own.base_url, retries=1, backoff_seconds=0.05), local)
    audio, refs = english(3)
    options = DecodeOptions(language="en")
    try:
        first = remote.transcribe(Request(audio[0]), options)
    finally:
        own.close()
    with caplog.at_level(logging.WARNING, logger="bot.asr.remote"):
        rest = [remote.transcribe(Request(a), options) for a in audio[1:]]
    texts = [first.text] + [t.text for t in rest]
    at_most("WER across the outage", wer(refs, texts), 0.35)  # every utterance has its transcript
    assert remote.stats.remote == 1 and remote.stats.fallback == 2 and remote.stats.outages == 1
    assert loaded == [True]  # loaded once, on the first need
    # One request failed (and its retry); the next went straight to the local model.
    assert remote.stats.failures == 2 and remote.stats.retries == 1
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(down) == 1 and own.base_url in down[0] and "local model" in down[0]


def test_nobody_listening_fails_over_at_once(tiny_en):
    remote = RemoteTranscriber(settings(f"http://127.0.0.1:{free_port()}/v1", retries=0), lambda: tiny_en)
    audio, refs = english(2)
    texts = [remote.transcribe(Request(a), DecodeOptions(language="en")).text for a in audio]
    at_most("WER on the local fallback", wer(refs, texts), 0.35)
    assert remote.stats.fallback == 2 and remote.stats.failures == 1  # the second was not tried remotely


def test_a_server_that_never_answers_times_out(tiny_en):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    remote = RemoteTranscriber(settings(url, timeout_seconds=0.5, retries=1, backoff_seconds=0.05), lambda: tiny_en)
    audio, refs = english(1)
    try:
        transcript = remote.transcribe(Request(audio[0]), DecodeOptions(language="en"))
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    at_most("WER after the timeout", wer(refs, [transcript.text]), 0.5)
    assert remote.stats.failures == 2 and remote.stats.retries == 1 and remote.stats.fallback == 1
    assert "Timeout" in (remote.stats.last_error or "")


def test_without_fallback_an_outage_fails_the_utterance_with_a_reason():
    remote = RemoteTranscriber(settings(f"http://127.0.0.1:{free_port()}/v1", retries=0))
    audio, _ = english(1)
    with pytest.raises(Exception, match="remote_fallback is off"):
        remote.transcribe(Request(audio[0]), DecodeOptions(language="en"))
