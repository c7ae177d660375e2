"""The embedding runtime on real voices; model files found, fetched, and refused with clear errors."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.audio.vad import silero_model_path
from bot.errors import ModelError
from bot.speaker.model import SpeakerModel, download_default_model, resolve_speaker_model
from tests.speaker.corpus import librispeech, others


def test_front_end_comes_from_the_model_metadata(speaker_model):
    fe = speaker_model.frontend
    assert (fe.num_mel_bins, fe.frame_length_ms, fe.frame_shift_ms, fe.window_type, fe.waveform_scale, fe.cmn) == (
        80,
        25.0,
        10.0,
        "hamming",
        32768.0,
        True,
    )
    assert speaker_model.info.dim == 192
    feats = fe.features(librispeech()["1688"][0].audio[:16000])
    assert feats.shape == (98, 80)
    assert abs(float(feats.mean(axis=0).max())) < 1e-3  # mean over time removed


def test_front_end_falls_back_to_config_where_metadata_is_silent(config):
    from bot.speaker.frontend import FrontEnd

    cfg = config.replace("speaker", num_mel_bins=64, frame_shift_ms=12.0).speaker
    default = FrontEnd(
        num_mel_bins=cfg.num_mel_bins, frame_length_ms=cfg.frame_length_ms, frame_shift_ms=cfg.frame_shift_ms
    )
    fe = FrontEnd.from_metadata({"frame_shift_ms": "10", "cmn": "none"}, default)
    assert (fe.num_mel_bins, fe.frame_length_ms, fe.frame_shift_ms, fe.cmn) == (64, 25.0, 10.0, False)
    assert fe.features(librispeech()["1688"][0].audio[:16000]).shape == (98, 64)


@pytest.mark.slow
def test_same_speaker_scores_above_different_speakers(speaker_model):
    ls = librispeech()
    embs = {spk: speaker_model.embed_batch([u.audio for u in utts[:4]]) for spk, utts in ls.items()}
    for e in embs.values():
        assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    same = [float(x) for e in embs.values() for x in (e @ e.T)[np.triu_indices(4, 1)]]
    spks = list(embs)
    diff = [float(x) for i, a in enumerate(spks) for b in spks[i + 1 :] for x in (embs[a] @ embs[b].T).ravel()]
    assert min(same) > max(diff)
    assert np.mean(same) > 0.6 and np.mean(diff) < 0.3
    # The short speechbrain and Picovoice samples too.
    o = others()
    s1 = speaker_model.embed_batch([u.audio for u in o["sb-spk1"]])
    s2 = speaker_model.embed_batch([u.audio for u in o["sb-spk2"]])
    assert (s1 @ s1.T)[np.triu_indices(len(s1), 1)].mean() > (s1 @ s2.T).max()


def test_a_batch_of_equal_lengths_gives_the_single_results(speaker_model):
    a = librispeech()["2033"][0].audio
    pieces = [a[:32000], a[32000:64000], a[64000:96000], a[:40000]]
    together = speaker_model.embed_batch(pieces)
    alone = np.stack([speaker_model.embed(p) for p in pieces])
    assert np.allclose(together, alone, atol=1e-4)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_speaker_model(str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelError, match="not found"):
        resolve_speaker_model("no-such-model", [str(tmp_path)])


def test_wrong_shaped_or_broken_model_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a speaker-embedding model of the expected shape"):
        SpeakerModel(silero_model_path())  # a real ONNX model, but a VAD
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelError, match="cannot load speaker model"):
        SpeakerModel(junk)


def test_auto_finds_a_model_in_the_speaker_folders(tmp_path, campplus_path):
    found = resolve_speaker_model("auto", [str(Path(campplus_path).parents[1])], download=False)
    assert found.name == "campplus-zh-en-common.onnx"
    assert resolve_speaker_model("campplus-zh-en-common", [str(Path(campplus_path).parents[1])]) == found


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_checks_the_digest_and_keeps_nothing_bad(file_server, tmp_path, campplus_path, capsys):
    root, url = file_server
    data = Path(campplus_path).read_bytes()
    (root / "m.onnx").write_bytes(data)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="sha256"):
        download_default_model(cache, f"{url}/m.onnx", "0" * 64)
    assert list(cache.iterdir()) == []
    got = download_default_model(cache, f"{url}/m.onnx", hashlib.sha256(data).hexdigest())
    assert got.read_bytes() == data and [p.name for p in cache.iterdir()] == [got.name]
    assert "MB done" in capsys.readouterr().err
    with pytest.raises(ModelError, match="cannot be downloaded from .*: the server answered HTTP 404"):
        download_default_model(tmp_path / "c2", f"{url}/missing.onnx", "0" * 64)
