"""Enrolment gates on real speech, and the in-memory API live enrolment uses."""

from __future__ import annotations

import numpy as np
import pytest

from bot.errors import StalkError
from bot.speaker.enrollment import EnrollmentError, SpeechMeter, enroll, net_speech
from tests.speaker.corpus import librispeech, others


def _audio(spk: str, n: int) -> list[np.ndarray]:
    return [u.audio for u in librispeech()[spk][:n]]


@pytest.mark.slow
def test_one_voice_enrols_and_matches_its_other_recordings(speaker_model, vad):
    result = enroll(speaker_model, _audio("1998", 2), vad=vad)
    assert result.speech_seconds >= 10 and result.pieces >= 3
    assert result.model_id == speaker_model.model_id
    assert abs(np.linalg.norm(result.embedding) - 1) < 1e-5
    own = speaker_model.embed(librispeech()["1998"][5].audio) @ result.embedding
    other = speaker_model.embed(librispeech()["2609"][5].audio) @ result.embedding
    assert own > 0.6 > 0.3 > other


@pytest.mark.slow
def test_live_segments_enrol_too(speaker_model, vad):
    """Short segments as a call delivers them (speechbrain's 2-3 s sentences), with progress."""
    segs = [u.audio for u in others()["sb-spk1"]]
    meter = SpeechMeter(vad, needed=10.0)
    progress = [meter.add(s) for s in segs]
    assert progress == sorted(progress) and meter.enough and meter.progress == 1.0
    assert abs(net_speech(segs, vad) - meter.seconds) < 1e-9
    result = enroll(speaker_model, segs, vad=vad)
    assert result.pieces >= 2


def test_too_little_speech(speaker_model, vad):
    with pytest.raises(EnrollmentError) as err:
        enroll(speaker_model, [librispeech()["1688"][2].audio], vad=vad)  # 2.8 s
    assert err.value.gate == "too_little_speech" and isinstance(err.value, StalkError)
    assert "enrolment needs 10 s" in str(err.value)


def test_silence(speaker_model, vad):
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(16000 * 12) * 1e-4).astype(np.float32)
    with pytest.raises(EnrollmentError) as err:
        enroll(speaker_model, [hiss], vad=vad)
    assert err.value.gate == "silent" and "no speech heard" in str(err.value)


def test_near_silent_speech(speaker_model, vad):
    quiet = [a * 0.003 for a in _audio("2033", 2)]
    with pytest.raises(EnrollmentError) as err:
        enroll(speaker_model, quiet, vad=vad)
    assert err.value.gate in ("quiet", "silent")


def test_clipped_speech(speaker_model, vad):
    loud = [np.clip(a * 12, -1, 1) for a in _audio("2033", 2)]
    with pytest.raises(EnrollmentError) as err:
        enroll(speaker_model, loud, vad=vad)
    assert err.value.gate == "clipped" and "clipped" in str(err.value)


def test_several_voices(speaker_model, vad):
    two = _audio("1688", 1) + _audio("2414", 2)[1:]  # 15 s of one man, 8 s of another
    with pytest.raises(EnrollmentError) as err:
        enroll(speaker_model, two, vad=vad)
    assert err.value.gate == "several_voices"
    # Two voices inside one file, turn by turn.
    a, b = librispeech()["1998"][0].audio, librispeech()["3005"][0].audio
    mixed = np.concatenate([a, np.zeros(8000, np.float32), b])
    with pytest.raises(EnrollmentError, match="more than one voice"):
        enroll(speaker_model, [mixed], vad=vad)


@pytest.mark.slow
def test_every_speaker_of_the_shared_data_passes_its_own_enrolment(speaker_model, vad):
    """The one-voice gate must not reject real single speakers (all six LibriSpeech readers,
    and Picovoice's enrolment speaker)."""
    for utts in librispeech().values():
        enroll(speaker_model, [u.audio for u in utts[:4]], vad=vad)
    enroll(speaker_model, [u.audio for u in others()["pv-speaker_1"]], vad=vad)
