"""Calibrate the speaker-verification threshold of a model on the shared real speakers.

Trials are what the pipeline does in a call: a voiceprint enrolled from about 14 s of a
speaker's recordings (the enrolment code itself, ``bot.speaker.enrollment.enroll``) scored
against every utterance the pipeline's own VAD cuts from the other recordings (1 s or
more), of the same speaker (target) and of every other shared speaker (non-target).
The threshold written is the equal-error point of those trials; the script also prints the
score distributions behind the enrolment one-voice check.

    python benchmarks/calibrate_speaker.py [--model PATH] [--write]

``--write`` stores the threshold for this model file (keyed by its sha256) in
``bot/speaker/thresholds.json``, which ``speaker.threshold = 0`` (the default) uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.audio.segmenter import Segment, Segmenter, SegmenterOptions  # noqa: E402
from bot.audio.vad import SAMPLE_RATE, SileroModel  # noqa: E402
from bot.speaker.calibration import THRESHOLDS_FILE, calibrations  # noqa: E402
from bot.speaker.enrollment import enroll  # noqa: E402
from bot.speaker.metrics import eer, min_dcf  # noqa: E402
from bot.speaker.model import SpeakerModel  # noqa: E402
from tests.speaker.corpus import all_speakers, enrolment_sets  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "speaker" / "campplus-zh-en-common.onnx"


def pipeline_segments(audio: np.ndarray, vad: SileroModel, min_seconds: float = 1.0) -> list[np.ndarray]:
    """The utterances the pipeline would cut from this audio (its default VAD options, with padding)."""
    seg = Segmenter(vad.new_stream(), SegmenterOptions())
    found = [e for e in seg.push(audio) if isinstance(e, Segment)] + [e for e in seg.finish() if isinstance(e, Segment)]
    return [s.audio for s in found if s.duration >= min_seconds]


def voiceprint_trials(model: SpeakerModel, vad: SileroModel, speakers: dict, *, segments: bool):
    """(target scores, non-target scores, target durations, non-target durations)."""
    tests = {}  # (speaker, utt name) -> list of (embedding, seconds)
    for spk, utts in speakers.items():
        for u in utts:
            pieces = pipeline_segments(u.audio, vad) if segments else [u.audio]
            embs = model.embed_batch(pieces) if pieces else np.zeros((0, model.info.dim))
            tests[(spk, u.name)] = [(e, len(p) / SAMPLE_RATE) for e, p in zip(embs, pieces)]
    tgt, non, tgt_s, non_s = [], [], [], []
    for spk, utts in speakers.items():
        for enrol_utts, rest in enrolment_sets(utts):
            vp = enroll(model, [u.audio for u in enrol_utts], vad=vad, min_speech=8.0).embedding
            rest_names = {u.name for u in rest}
            for (other, name), items in tests.items():
                if other == spk and name not in rest_names:
                    continue  # used to enrol
                for e, sec in items:
                    (tgt if other == spk else non).append(float(e @ vp))
                    (tgt_s if other == spk else non_s).append(sec)
    return np.array(tgt), np.array(non), np.array(tgt_s), np.array(non_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--write", action="store_true", help="store the threshold in bot/speaker/thresholds.json")
    args = ap.parse_args()
    model, vad = SpeakerModel(args.model), SileroModel()
    speakers = all_speakers()
    tgt, non, _, _ = voiceprint_trials(model, vad, speakers, segments=True)
    e, th = eer(tgt, non)
    dcf, dcf_th = min_dcf(tgt, non)
    print(
        f"model {model.info.name} ({model.model_id[:12]}): {len(tgt)} target, {len(non)} non-target trials "
        f"(voiceprint vs VAD-cut utterance >= 1 s, {len(speakers)} speakers)"
    )
    print(
        f"  target scores     p1 {np.percentile(tgt, 1):.3f}  p5 {np.percentile(tgt, 5):.3f}  "
        f"median {np.median(tgt):.3f}"
    )
    print(
        f"  non-target scores median {np.median(non):.3f}  p95 {np.percentile(non, 95):.3f}  "
        f"p99 {np.percentile(non, 99):.3f}  max {non.max():.3f}"
    )
    print(f"  EER {100 * e:.2f}% at {th:.3f}; minDCF(0.01) {dcf:.3f} at {dcf_th:.3f}")
    # Pieces of ~4 s, as the enrolment one-voice check cuts them.
    same, diff = [], []
    embs = {
        spk: model.embed_batch([u.audio[: 4 * SAMPLE_RATE] for u in utts if u.seconds >= 1.5])
        for spk, utts in speakers.items()
    }
    names = list(embs)
    for i, a in enumerate(names):
        s = embs[a] @ embs[a].T
        same += list(s[np.triu_indices(len(s), 1)])
        for b in names[i + 1 :]:
            diff += list((embs[a] @ embs[b].T).ravel())
    print(
        f"  4 s pieces: same speaker p1 {np.percentile(same, 1):.3f} min {min(same):.3f}; "
        f"different p99 {np.percentile(diff, 99):.3f} max {max(diff):.3f}"
    )
    threshold = round(th, 3)
    if args.write:
        table = calibrations()
        table[model.model_id] = {
            "model": model.info.name,
            "threshold": threshold,
            "eer": round(e, 4),
            "target_trials": len(tgt),
            "nontarget_trials": len(non),
            "trials": "voiceprint (~14 s) vs VAD-cut utterance >= 1 s, shared speakers",
        }
        THRESHOLDS_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote threshold {threshold} to {THRESHOLDS_FILE}")


if __name__ == "__main__":
    main()
