"""Resampling, streaming VAD and segmentation on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.frames import PcmFrame
from bot.audio.resample import StreamResampler
from bot.audio.segmenter import Segment, Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted
from bot.audio.vad import WINDOW, SileroModel
from tests.calls import RATE, librispeech_files, load16k, shared, speech_bounds


@pytest.fixture(scope="module")
def vad():
    return SileroModel()


def to_discord(audio16k: np.ndarray) -> np.ndarray:
    """16 kHz mono float -> 48 kHz stereo int16, as Discord delivers it."""
    import soxr

    up = soxr.resample(audio16k, RATE, 48000)
    return (np.clip(np.stack([up, up * 0.8], axis=1), -1, 1) * 32767).astype(np.int16)


def segments(events):
    return [e for e in events if isinstance(e, Segment)]


def test_streaming_vad_equals_whole_file_scoring(vad):
    """State carried across arbitrary block sizes gives the probabilities of one pass."""
    from faster_whisper.vad import get_vad_model

    audio = load16k(shared("data", "misc", "jfk.flac"))
    n = len(audio) // WINDOW * WINDOW
    whole = get_vad_model()(audio[:n]).reshape(-1)
    stream, got, i = vad.new_stream(), [], 0
    rng = np.random.default_rng(1)
    while i < n:
        k = int(rng.integers(1, 12)) * WINDOW
        got.append(stream.probabilities(audio[i : i + k]))
        i += k
    np.testing.assert_allclose(np.concatenate(got), whole, atol=1e-5)
    assert 0.3 < (whole > 0.5).mean() < 0.95  # real speech with pauses


def test_resampler_keeps_time_and_content():
    """48 kHz stereo int16 -> 16 kHz mono: same length, same timing, same signal."""
    speech = load16k(librispeech_files("1688")[0])[: 3 * RATE]
    pcm = to_discord(speech)
    rs = StreamResampler(48000)
    out = np.concatenate([rs.process(pcm[i : i + 960]) for i in range(0, len(pcm), 960)] + [rs.flush()])
    assert abs(len(out) - len(speech)) <= 1
    expected = speech * 0.9  # the mean of the two channels
    m = min(len(out), len(expected))
    assert np.corrcoef(out[:m], expected[:m])[0, 1] > 0.99
    lag = np.argmax(np.correlate(out[8000:12000], expected[8000:12000], "full")) - 3999
    assert lag == 0


def feed(segmenter, audio, block):
    events = []
    for i in range(0, len(audio), block):
        events += segmenter.push(audio[i : i + block])
    return events + list(segmenter.finish())


def placed_speech(vad_gap=2.0):
    clips = [load16k(f) for f in librispeech_files("2609")[:2]]
    silence = np.zeros(int(vad_gap * RATE), np.float32)
    audio = np.concatenate([silence, clips[0], silence, clips[1], silence])
    b0 = speech_bounds(clips[0])
    t1 = vad_gap * 2 + len(clips[0]) / RATE
    b1 = speech_bounds(clips[1])
    return audio, [(vad_gap + b0[0], vad_gap + b0[1]), (t1 + b1[0], t1 + b1[1])]


def test_segments_match_speech_whatever_the_block_size(vad):
    audio, truth = placed_speech()
    runs = []
    for block in (320, 512, 4096, 16000):
        segs = segments(feed(Segmenter(vad.new_stream()), audio, block))
        runs.append([(round(s.start, 3), round(s.end, 3)) for s in segs])
    assert all(r == runs[0] for r in runs)
    segs = segments(feed(Segmenter(vad.new_stream()), audio, 320))
    for lo, hi in truth:
        mine = [s for s in segs if lo - 0.4 <= s.start <= hi]
        assert mine and abs(mine[0].start - lo) < 0.4 and abs(mine[-1].end - hi) < 0.5
    for s in segs:
        assert s.ready_at >= s.end + 0.5 - 1e-9  # half a second of silence ends an utterance
        assert s.audio_start <= s.start - 0.19 and len(s.audio) / RATE >= s.duration  # padded for Whisper


def test_events_pair_up_and_precede_segments(vad):
    audio, _ = placed_speech()
    events = feed(Segmenter(vad.new_stream()), audio, 320)
    open_at = None
    for e in events:
        if isinstance(e, SpeechStarted):
            assert open_at is None
            open_at = e.at
        elif isinstance(e, Segment):
            assert open_at is not None and e.start >= open_at - 1e-9
        elif isinstance(e, SpeechEnded):
            assert open_at is not None and e.at > open_at
            open_at = None
    assert open_at is None


def test_gaps_where_the_source_sent_nothing_keep_times_right(vad):
    """Discord stops sending in silence: the same call delivered with holes gives the same segments."""
    audio, _ = placed_speech(vad_gap=3.0)
    full = segments(feed(Segmenter(vad.new_stream()), audio, 320))
    seg = Segmenter(vad.new_stream())
    events = []
    energy = np.abs(audio)
    for i in range(0, len(audio), 320):
        block = audio[i : i + 320]
        if energy[max(0, i - 16000) : i + 16000].max() == 0:
            continue  # a second or more from any sound: the sender was silent
        if i and seg.position * RATE < i:
            events += seg.skip_to(i)
        events += seg.push(block)
    events += seg.finish()
    holes = segments(events)
    assert len(holes) == len(full)
    for a, b in zip(full, holes):
        assert abs(a.start - b.start) < 0.1 and abs(a.end - b.end) < 0.1


def test_long_speech_is_split_at_a_pause(vad):
    audio = np.concatenate([load16k(f) for f in librispeech_files("1688")[:3]])
    opts = SegmenterOptions(max_utterance_s=6.0)
    segs = segments(feed(Segmenter(vad.new_stream(), opts), audio, 320))
    assert any(s.split for s in segs)
    probs = vad.new_stream().probabilities(audio[: len(audio) // WINDOW * WINDOW])
    for s in segs:
        assert s.duration <= 6.0 + 1e-6
        if s.split:
            # The cut is at the quietest point the search window offered, not mid-word.
            cut = int(s.end * RATE) // WINDOW
            assert probs[max(cut - 1, 0) : cut + 2].mean() < 0.9
    # Consecutive split pieces do not overlap or leave a hole.
    for a, b in zip(segs, segs[1:]):
        if a.split:
            assert abs(b.start - a.end) < 1e-6


def test_clicks_shorter_than_min_speech_are_not_utterances(vad):
    rng = np.random.default_rng(0)
    audio = np.zeros(3 * RATE, np.float32)
    click = load16k(librispeech_files("2033")[0])
    lo, _ = speech_bounds(click)
    burst = click[int(lo * RATE) : int(lo * RATE) + RATE // 10]  # 100 ms of a real word onset
    audio[RATE : RATE + len(burst)] = burst
    audio += rng.normal(0, 1e-4, len(audio)).astype(np.float32)
    events = feed(Segmenter(vad.new_stream(), SegmenterOptions(min_speech_ms=250)), audio, 320)
    assert segments(events) == []
    assert not any(isinstance(e, SpeechStarted) for e in events)


@pytest.mark.slow
def test_pipeline_accepts_discord_frames_and_file_frames_alike(vad, config, tiny_en):
    """48 kHz stereo int16 20 ms frames and 16 kHz float frames give the same utterances."""
    from bot.clock import VirtualClock
    from bot.pipeline import CallPipeline, PipelineListener

    speech = load16k(librispeech_files("3005")[0])
    audio = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])

    def run(frames):
        got = []

        class Collect(PipelineListener):
            def on_utterance(self, event):
                got.append(event)

        p = CallPipeline(config, tiny_en, clock=VirtualClock(), listeners=[Collect()], vad=vad)
        p.add_speaker("u1", "Una")
        for f in frames:
            p.feed("u1", f)
        p.close()
        return sorted(got, key=lambda e: e.start)

    pcm48 = to_discord(audio)
    discord = run(PcmFrame(i / 48000, pcm48[i : i + 960], 48000) for i in range(0, len(pcm48), 960))
    files = run(PcmFrame(i / RATE, audio[i : i + 8000], RATE) for i in range(0, len(audio), 8000))
    assert [round(e.start, 2) for e in discord] == pytest.approx([round(e.start, 2) for e in files], abs=0.07)
    assert " ".join(e.text for e in discord).lower()[:40] == " ".join(e.text for e in files).lower()[:40]


class CountingVad:
    """A VAD stream that counts the windows it scores."""

    def __init__(self, stream) -> None:
        self.stream, self.scored = stream, 0

    def probabilities(self, windows):
        self.scored += len(windows) // WINDOW
        return self.stream.probabilities(windows)

    def reset(self) -> None:
        self.stream.reset()


def loudest_cut(audio: np.ndarray, lo: float, hi: float) -> int:
    """A sample index just after the loudest 20 ms between ``lo`` and ``hi`` s: inside a word,
    as when a client's voice detection cuts a speaker off mid-speech."""
    hop = RATE // 50
    frames = audio[int(lo * RATE) : int(hi * RATE)]
    frames = frames[: len(frames) // hop * hop].reshape(-1, hop)
    return int(lo * RATE) + (int(np.argmax((frames**2).mean(axis=1))) + 1) * hop


def test_silent_until_ends_the_utterance_as_skipping_the_silence_would(vad):
    """Told that the source is silent, the segmenter ends the utterance once the end-of-utterance
    silence has passed in call time, with the segment skipping that silence gives (same times,
    the same audio padded with the silence), and scores none of that silence."""
    clip = load16k(librispeech_files("1688")[2])
    cut = loudest_cut(clip, 1.5, 2.5)
    start = 2 * RATE  # the speaker's first frame, in call time
    later = clip[cut:]  # the rest of the sentence, 3 s later

    ref = Segmenter(vad.new_stream(), start_index=start)
    ref_events = list(ref.push(clip[:cut])) + list(ref.skip_to(start + cut + 3 * RATE)) + list(ref.push(later))

    counting = CountingVad(vad.new_stream())
    seg = Segmenter(counting, start_index=start)  # type: ignore[arg-type]
    assert not segments(seg.push(clip[:cut]))  # cut off mid-speech: still speaking
    scored = counting.scored
    told = []
    for step in range(1, 40):  # told every 20 ms, as the bot's ticks do
        at = start + cut + step * RATE // 50
        got = list(seg.silent_until(at))
        told.append((at, got))
        if segments(got):
            break
    assert counting.scored - scored <= 1  # at most the partial window, completed with silence
    ended_at, ended = told[-1]
    mine, theirs = segments(ended), segments(ref_events)[0]
    assert (mine[0].start, mine[0].end, mine[0].ready_at) == (theirs.start, theirs.end, theirs.ready_at)
    assert not any(segments(g) for _, g in told[:-1]) and ended_at / RATE >= theirs.ready_at
    assert ended_at / RATE - theirs.ready_at < 0.02 + 1e-9  # the first tick past it
    # The same audio, then the silence it is known to be followed by, up to the usual padding.
    n = len(theirs.audio)
    assert mine[0].audio_start == theirs.audio_start
    assert len(mine[0].audio) == round((theirs.end + 0.2 - theirs.audio_start) * RATE) > n
    np.testing.assert_array_equal(mine[0].audio[:n], theirs.audio)
    assert not mine[0].audio[n:].any()
    assert any(isinstance(e, SpeechEnded) for e in ended)

    # What follows is what skipping alone gives.
    rest = list(seg.skip_to(start + cut + 3 * RATE)) + list(seg.push(later)) + list(seg.finish())
    ref_rest = list(ref.finish())
    after = [(s.start, s.end, s.ready_at) for s in segments(ref_events)[1:] + segments(ref_rest)]
    assert [(s.start, s.end, s.ready_at) for s in segments(rest)] == after and after


def test_speech_resuming_within_the_silence_continues_the_utterance(vad):
    """Told silent for less than the end-of-utterance silence, then speech again: one utterance,
    exactly the one the same audio gives without being told."""
    clip = load16k(librispeech_files("1688")[2])
    cut = loudest_cut(clip, 1.0, 2.0)
    gap = RATE * 3 // 10  # 0.3 s with nothing sent

    def run(tell: bool):
        seg = Segmenter(vad.new_stream())
        events = list(seg.push(clip[:cut]))
        if tell:
            for at in range(cut + 320, cut + gap, 320):
                events += seg.silent_until(at)
        events += seg.skip_to(cut + gap)
        events += seg.push(clip[cut:])
        return segments(events + list(seg.finish()))

    told, plain = run(True), run(False)
    assert len(told) == 1 and told[0].start < cut / RATE - 0.5 and told[0].end > (cut + gap) / RATE + 0.3
    assert [(s.start, s.end, s.ready_at) for s in told] == [(s.start, s.end, s.ready_at) for s in plain]
    np.testing.assert_array_equal(told[0].audio, plain[0].audio)
