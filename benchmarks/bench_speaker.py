"""Benchmark: speaker verification on the shared real speakers, and guests in replayed calls.

Prints, for the model given (default: the shared CAM++ WeSpeaker export):
1. EER and minDCF (p_target 0.01) on every cross-utterance trial of whole recordings
   (utterance vs utterance), for the six LibriSpeech speakers and for all shared speakers;
2. voiceprint (enrolled from ~14 s, as ``enroll`` does) vs whole recordings, and vs the
   utterances the pipeline's own VAD cuts from them (1 s or more): EER, minDCF, and the
   difference in EER points;
3. the same voiceprint trials with adaptive s-norm (cohort: the 22 Korean Common Voice
   speakers), to see whether score normalisation helps;
4. embedding cost: thread CPU time per second of speech (features + inference), i.e. the
   share of one core a speaker who talks all the time costs;
5. guest detection on replayed calls through the real pipeline (tiny.en, --speed 0): on
   each enrolled owner's track, recordings of another LibriSpeech speaker are placed
   between the owner's own; recall = guest utterances of 2 s or more marked 'mismatch',
   false flags = owners' judged utterances marked 'mismatch';
6. the hard case without Whisper: owners' and guests' speech cut into 1-2.5 s utterances,
   verdicts of the tracker with and without neighbouring evidence.

    python benchmarks/bench_speaker.py [--model PATH] [--calls N] [--no-calls]

CPU figures are thread CPU time, so other processes on the machine do not inflate them.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.calibrate_speaker import DEFAULT_MODEL, pipeline_segments  # noqa: E402
from bot.audio.vad import SAMPLE_RATE, SileroModel  # noqa: E402
from bot.speaker.calibration import threshold_for  # noqa: E402
from bot.speaker.enrollment import enroll  # noqa: E402
from bot.speaker.metrics import eer, min_dcf  # noqa: E402
from bot.speaker.model import SpeakerModel  # noqa: E402
from tests.calls import build_call, librispeech_files, load16k, shared, tiny_en_dir  # noqa: E402
from tests.speaker.corpus import LIBRISPEECH, all_speakers, enrolment_sets, librispeech  # noqa: E402


def fmt(name: str, tgt, non) -> str:
    e, _ = eer(tgt, non)
    d, _ = min_dcf(tgt, non)
    margin = float(np.min(tgt) - np.max(non))
    return (
        f"  {name:<46} {len(tgt):5d} target {len(non):6d} non-target  EER {100 * e:5.2f}%  minDCF {d:.3f}  "
        f"margin {margin:+.3f}"
    )


def cross_utterance(model, speakers) -> tuple[list[float], list[float]]:
    items = [(spk, model.embed(u.audio)) for spk, utts in speakers.items() for u in utts]
    tgt, non = [], []
    for i, (a, ea) in enumerate(items):
        for b, eb in items[i + 1 :]:
            (tgt if a == b else non).append(float(ea @ eb))
    return tgt, non


def snorm(score: float, e_cohort: np.ndarray, t_cohort: np.ndarray, top: int = 20) -> float:
    """Adaptive symmetric normalisation: each side against its ``top`` closest cohort scores."""
    e = np.sort(e_cohort)[-top:]
    t = np.sort(t_cohort)[-top:]
    return 0.5 * ((score - e.mean()) / (e.std() + 1e-6) + (score - t.mean()) / (t.std() + 1e-6))


def voiceprint_trials(model, vad, speakers, cohort):
    """Trials of voiceprints against whole files and against VAD-cut segments, raw and s-normed."""
    tests = {}
    for spk, utts in speakers.items():
        for u in utts:
            whole = model.embed(u.audio)
            segs = pipeline_segments(u.audio, vad)
            tests[(spk, u.name)] = (whole, model.embed_batch(segs) if segs else np.zeros((0, model.info.dim)))
    out = {k: ([], []) for k in ("whole", "segments", "whole s-norm", "segments s-norm")}
    for spk, utts in speakers.items():
        for enrol_utts, rest in enrolment_sets(utts):
            vp = enroll(model, [u.audio for u in enrol_utts], vad=vad, min_speech=8.0).embedding
            vp_cohort = cohort @ vp
            rest_names = {u.name for u in rest}
            for (other, name), (whole, segs) in tests.items():
                if other == spk and name not in rest_names:
                    continue
                k = 0 if other == spk else 1
                for kind, embs in (("whole", whole[None, :]), ("segments", segs)):
                    for e in embs:
                        s = float(e @ vp)
                        out[kind][k].append(s)
                        out[f"{kind} s-norm"][k].append(snorm(s, vp_cohort, cohort @ e))
    return out


def cpu_cost(model, vad, speakers) -> tuple[float, float]:
    segs = [s for utts in speakers.values() for u in utts for s in pipeline_segments(u.audio, vad)]
    seconds = sum(len(s) for s in segs) / SAMPLE_RATE
    model.embed(segs[0])  # warm-up
    t0 = time.thread_time()
    for s in segs:
        model.embed(s)
    return (time.thread_time() - t0) / seconds, seconds


def guest_calls(model, n_calls: int):
    """Replay calls with a guest on the owner's mic; returns per-utterance (kind, seconds, verdict)."""
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber
    from bot.config import load_config
    from bot.replay import Track, replay
    from storage import get_session, open_database
    from storage.queries import session_to_json
    from storage.voiceprints import save_voiceprint
    from tests.calls import models_env

    transcriber = WhisperTranscriber(load_whisper(tiny_en_dir(), workers=2), "tiny.en")
    config = load_config(None, env=models_env())
    rows = []
    ls = librispeech()
    for c in range(n_calls):
        owner, other = LIBRISPEECH[c % 6], LIBRISPEECH[(c + 1) % 6]
        guest = LIBRISPEECH[(c + 3) % 6]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            db_url = str(tmp / "call.db")
            enrolled = {}
            with open_database(db_url) as db:
                for name, spk in (("owner", owner), ("other", other)):
                    chosen, rest = enrolment_sets(ls[spk], need=18.0)[0]
                    save_voiceprint(db, enroll(model, [u.audio for u in chosen]).voiceprint(name))
                    enrolled[name] = [f for f in librispeech_files(spk) if f.stem in {u.name for u in rest}]
            g = librispeech_files(guest)
            own = enrolled["owner"]
            script = []
            guests = [g[(2 * c) % 10], g[(2 * c + 1) % 10], g[(2 * c + 5) % 10]]
            for i, f in enumerate(own):
                script.append(("owner", f, "own"))
                if i in (1, 3, 5) and guests:
                    script.append(("owner", guests.pop(0), "guest"))
                if i % 3 == 2:
                    script.append(("other", enrolled["other"][i % len(enrolled["other"])], "own"))
            paths, placed = build_call(tmp, script)
            summary = replay(
                config,
                [Track(n, str(p)) for n, p in paths.items()],
                db_url=db_url,
                speed=0,
                language="en",
                out=io.StringIO(),
                transcriber=transcriber,
                speaker_model=model,
            )
            with open_database(db_url) as db:
                export = session_to_json(get_session(db, summary.session_id))
            for u in export["utterances"]:
                best = max(placed, key=lambda p: min(p.speech_end, u["end"]) - max(p.speech_start, u["start"]))
                rows.append(
                    (best.text, u["end"] - u["start"], u["verification"], u["speaker_label"], u["speaker_score"])
                )
        print(f"  call {c + 1}: owner {owner}, guest {guest} on the owner's mic, other participant {other}", flush=True)
    return rows


def short_turns(model, seed: int = 0) -> None:
    """Owners' and guests' speech cut into 1-2.5 s utterances (the hard case), judged by the
    tracker alone and with neighbouring evidence."""
    from bot.speaker.tracker import StreamTracker

    rng = np.random.default_rng(seed)
    threshold = threshold_for(model.model_id)
    ls = librispeech()

    def chunks(audios):
        out = []
        for a in audios:
            i = 0
            while len(a) - i >= SAMPLE_RATE:
                n = int(rng.uniform(1.0, 2.5) * SAMPLE_RATE)
                out.append(a[i : i + n])
                i += n
        return out

    totals = {0: [0, 0, 0, 0], 2: [0, 0, 0, 0]}  # context -> guest flagged, guests, owner flagged, owners
    for c, owner in enumerate(LIBRISPEECH):
        guest = LIBRISPEECH[(c + 3) % 6]
        chosen, rest = enrolment_sets(ls[owner], need=18.0)[0]
        vp = enroll(model, [u.audio for u in chosen]).embedding
        own = chunks([u.audio for u in rest])
        visitor = chunks([ls[guest][c].audio, ls[guest][c + 4].audio])
        third = len(own) // 3
        half = len(visitor) // 2
        seq = (
            [("own", a) for a in own[:third]]
            + [("guest", a) for a in visitor[:half]]
            + [("own", a) for a in own[third : 2 * third]]
            + [("guest", a) for a in visitor[half:]]
            + [("own", a) for a in own[2 * third :]]
        )
        embs = model.embed_batch([a for _, a in seq])
        for context in totals:
            tracker = StreamTracker("owner", vp, threshold, context=context)
            t, items = 0.0, []
            for (kind, a), e in zip(seq, embs):
                d = len(a) / SAMPLE_RATE
                items.append((kind, tracker.add(t, t + d, e)[0]))
                t += d + 0.7
            for kind, item in items:
                flagged = item.verdict.verification == "mismatch"
                k = 0 if kind == "guest" else 2
                totals[context][k] += flagged
                totals[context][k + 1] += 1
    print("6. short utterances (1-2.5 s) on owners' tracks with guest turns, 6 owners, tracker only")
    for context, (gf, g, of, o) in totals.items():
        how = "judged alone" if context == 0 else f"with neighbouring evidence (context {context})"
        print(
            f"  {how:<42} guests flagged {gf}/{g} = {100 * gf / g:.1f}%, owners flagged {of}/{o} = {100 * of / o:.1f}%"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--calls", type=int, default=6, help="replayed guest calls (default 6)")
    ap.add_argument("--no-calls", action="store_true", help="skip part 5")
    ap.add_argument("--calls-only", action="store_true", help="only part 5")
    args = ap.parse_args()
    model, vad = SpeakerModel(args.model), SileroModel()
    threshold = threshold_for(model.model_id, model.info.name)
    print(f"model {model.info.name} ({model.model_id[:12]}), threshold {threshold}")
    ls = {f"ls-{k}": v for k, v in librispeech().items()}
    everyone = all_speakers()
    if not args.calls_only:
        trials(model, vad, ls, everyone)
        short_turns(model)
    if not args.no_calls:
        calls(model, args.calls)


def trials(model, vad, ls, everyone) -> None:
    print("1. cross-utterance trials, whole recordings (utterance vs utterance)")
    print(fmt("LibriSpeech, 6 speakers", *cross_utterance(model, ls)))
    print(fmt(f"all shared speakers ({len(everyone)})", *cross_utterance(model, everyone)))

    cohort = model.embed_batch([load16k(f) for f in sorted(shared("data", "korean").glob("*.wav"))])
    for label, speakers in (("LibriSpeech", ls), ("all shared speakers", everyone)):
        print(f"2/3. voiceprint (~14 s enrolment) vs test speech, {label}")
        t = voiceprint_trials(model, vad, speakers, cohort)
        for kind in ("whole", "segments", "whole s-norm", "segments s-norm"):
            name = {"whole": "whole recordings", "segments": "pipeline VAD-cut utterances >= 1 s"}.get(
                kind, kind.replace("whole", "whole recordings,").replace("segments", "VAD-cut,")
            )
            print(fmt(name, *t[kind]))
        e_whole, _ = eer(*t["whole"])
        e_seg, _ = eer(*t["segments"])
        print(f"  EER VAD-cut minus whole: {100 * (e_seg - e_whole):+.2f} points (target: at most +0.50)")

    per_second, seconds = cpu_cost(model, vad, everyone)
    print(
        f"4. embedding cost: {per_second * 1000:.1f} ms CPU per second of speech over {seconds:.0f} s of "
        f"VAD-cut utterances = {100 * per_second:.2f}% of one core per continuously talking speaker "
        f"(target < 2%)"
    )


def calls(model, n: int) -> None:
    print(f"5. guest detection, {n} replayed calls (tiny.en, --speed 0)")
    rows = guest_calls(model, n)
    guests = [r for r in rows if r[0] == "guest" and r[1] >= 2.0]
    owners = [r for r in rows if r[0] == "own" and r[2] != "unknown"]
    flagged = sum(r[2] == "mismatch" for r in guests)
    false = sum(r[2] == "mismatch" for r in owners)
    labelled = sum(r[2] == "mismatch" and (r[3] or "").startswith("guest") for r in guests)
    print(
        f"  guest utterances >= 2 s flagged: {flagged}/{len(guests)} = {100 * flagged / max(len(guests), 1):.1f}% "
        f"(target >= 90%), labelled as a guest: {labelled}"
    )
    threshold = threshold_for(model.model_id)
    alone_g = sum(r[4] is not None and r[4] < threshold for r in guests)
    alone_o = sum(r[4] is not None and r[4] < threshold for r in owners)
    print(
        f"  each utterance judged alone (no neighbour evidence): guests flagged {alone_g}/{len(guests)}, "
        f"owners flagged {alone_o}/{len(owners)}"
    )
    print(
        f"  owners' judged utterances flagged: {false}/{len(owners)} = {100 * false / max(len(owners), 1):.1f}% "
        f"(target <= 2%); owners' utterances not judged (< 1 s): "
        f"{sum(r[0] == 'own' and r[2] == 'unknown' for r in rows)}"
    )


if __name__ == "__main__":
    main()
