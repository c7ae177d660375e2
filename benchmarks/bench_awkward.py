"""Benchmark: awkwardness signals (monologue, short answers, backchannels, unanswered question).

Replays calls of real speech made to show one signal each at known places (a silence of 4.2 s
after the place: a plain 5 s lull never fires there; for backchannels, 12 s of nothing but
backchannels 3 s apart), and calls that flow normally (short gaps, one in eight a thinking pause
of 2-4.5 s, backchannels while someone talks, questions answered after 0.3-3.5 s), through the
whole replay pipeline (voice activity detection, the hints engine, storage). Prints, per signal:
the places detected (a hint during the place's silence naming the signal) and how soon; per
hour of normal call: the hints each signal caused (all false alarms: a normal call has no
lull). Also the same calls with every signal off (plain silence), the baseline.

Transcripts: the clips' reference text (``tests/hints/awkward_calls.ReferenceTranscriber``), or
with ``--whisper`` the real tiny.en (English calls only; Korean needs a multilingual model).

    python benchmarks/bench_awkward.py [--whisper] [--normal 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.hints.awkward import Signal  # noqa: E402
from tests.calls import tiny_en_dir  # noqa: E402
from tests.hints.awkward_calls import AwkwardCall, ReferenceTranscriber, awkward_calls, normal_calls  # noqa: E402
from tests.hints.conftest import hints_config, replay_call  # noqa: E402

CONTENT = ("monologue", "short_answers", "backchannels", "unanswered")


def config(on: bool):
    values = {f"hints_{k}": on for k in CONTENT}
    return hints_config(llm_enabled=False, hints_cooldown_seconds=15, **values)


def whisper():
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    return WhisperTranscriber(load_whisper(tiny_en_dir(), workers=2), "tiny.en")


def run(call: AwkwardCall, tmp: Path, on: bool, tiny):
    folder = tmp / f"{call.name}-{'on' if on else 'off'}"
    folder.mkdir()
    transcriber = tiny if tiny is not None else ReferenceTranscriber(call.call)
    return replay_call(config(on), call.call, folder, transcriber, language="ko" if "-ko" in call.name else "en")


def detected(call: AwkwardCall, hints: list[dict]) -> list[float | None]:
    """Per place: seconds from the place's last real line to the hint naming the signal, or None.
    The hint's silence may start at a backchannel inside the place (a plain silence after it,
    helped sooner by the backchannels signal) or at the last real line (a backchannel lull)."""
    out: list[float | None] = []
    for end, resume in call.places:
        hit = [
            h
            for h in hints
            if end - 0.6 <= h["silence"] < resume and h["at"] < resume + 0.3 and call.signal in h["signals"]
        ]
        out.append(round(hit[0]["at"] - end, 2) if hit else None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--whisper", action="store_true", help="transcribe with tiny.en (English calls only)")
    ap.add_argument("--normal", type=int, default=6, help="normal calls to replay")
    args = ap.parse_args()
    tiny = whisper() if args.whisper else None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        calls = awkward_calls(tmp / "awkward")
        normals = normal_calls(tmp / "normal", count=args.normal)
        if tiny is not None:
            calls = [c for c in calls if "-ko" not in c.name]
            normals = [c for c in normals if "-ko" not in c.name]
        print(f"transcripts: {'tiny.en' if tiny else 'reference text'}; signal threshold 3 s, plain 5 s")
        print()
        print("signal                places  detected  plain lull  delay (s, line end -> hint)")
        found: dict[str, list[float | None]] = {}
        for c in calls:
            hits = detected(c, run(c, tmp, True, tiny).hints)
            base = detected(c, [{**h, "signals": [c.signal]} for h in run(c, tmp, False, tiny).hints])
            found.setdefault(str(c.signal), []).extend(hits)
            delays = [x for x in hits if x is not None]
            print(
                f"{c.name:20s}  {len(c.places):6d}  {sum(x is not None for x in hits):8d}  "
                f"{sum(x is not None for x in base):10d}  "
                + (f"{min(delays):.2f}-{max(delays):.2f}" if delays else "-")
            )
        print()
        for signal, hits in found.items():
            print(f"detection rate {signal}: {sum(x is not None for x in hits)}/{len(hits)}")
        print()
        seconds = 0.0
        by_signal: dict[str, int] = {str(s): 0 for s in Signal if s != Signal.FLAGGING}
        plain_hints = hints_on = 0
        for c in normals:
            seconds += c.call.length
            on, off = run(c, tmp, True, tiny), run(c, tmp, False, tiny)
            plain_hints += len(off.hints)
            hints_on += len(on.hints)
            for h in on.hints:
                for s in h["signals"]:
                    by_signal[s] = by_signal.get(s, 0) + 1
                print(f"  false alarm in {c.name} at {h['at']:.1f} s: {', '.join(h['signals']) or 'plain silence'}")
        hours = seconds / 3600
        gaps = []
        for c in normals:
            turns = sorted(c.call.turns, key=lambda t: t.speech_start)
            gaps += [b.speech_start - a.speech_end for a, b in zip(turns, turns[1:])]
        print(
            f"normal calls: {len(normals)}, {seconds / 60:.1f} min, {len(gaps) + len(normals)} turns, "
            f"gaps median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s"
        )
        print(f"hints on normal calls: {hints_on} with the signals on ({hints_on / hours:.1f}/h), {plain_hints} plain")
        for s, n in by_signal.items():
            print(f"false alarms per hour, {s}: {n / hours:.1f}")


if __name__ == "__main__":
    main()
