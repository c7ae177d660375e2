"""Benchmark: many guilds on one machine, one pool per session (before) against the shared scheduler (after).

Each simulated guild is a two-person conversation of real read speech (LibriSpeech test-other
from ../shared/data, a different pair of speakers per guild, turns taken with 0.7 s pauses),
streamed through the real pipeline in real time (replay at speed 1, its own SQLite file,
20 ms frames, VAD per speaker). All guilds run at once in one process on one loaded model, their
starts spread over two seconds. For 1, 2, 4 and 8 guilds, in one run:

- before: each session with a pool of its own (``asr.workers`` threads), as every session had
  before bot/asr/scheduler.py; they meet only in the model's own worker queue;
- after: one ``TranscriptionScheduler`` for the process (``asr.workers`` threads in all), fair
  between guilds and speakers.

Printed per setting: every guild's p95 latency from the last word to the stored transcript, the
worst and best guild's, the p95 queue delay (waiting for a worker), and the total throughput
(seconds of speech transcribed per second of wall time from the first frame to the last stored
transcript, and utterances per second).

    python benchmarks/bench_scheduler.py [--model PATH_OR_SIZE] [--guilds 1 2 4 8] [--turns 3]

The model defaults to whisper-base int8 from ../shared/models; configuration comes from STALK_*
variables as for the bot (STALK_ASR_WORKERS, STALK_ASR_BATCH_SIZE, ...).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.calls import RATE, base_dir, build_call, librispeech_files, librispeech_refs, load16k  # noqa: E402

SPEAKERS = ["1688", "1998", "2033", "2414", "2609", "3005"]


@dataclass
class GuildResult:
    guild: int
    latencies: list[float]
    queue_delays: list[float]
    speech_seconds: float
    utterances: int
    finished: float  # wall seconds from the run's start to this guild's close


def make_guild(tmp: Path, g: int, turns: int, max_len: float = 8.0):
    """Guild ``g``: two of the six speakers taking ``turns`` turns each, utterances chosen per guild."""
    refs = librispeech_refs()
    pair = [SPEAKERS[(2 * g) % 6], SPEAKERS[(2 * g + 1 + g // 3) % 6]]
    if pair[0] == pair[1]:
        pair[1] = SPEAKERS[(2 * g + 2) % 6]
    pools = [[f for f in librispeech_files(s) if len(load16k(f)) / RATE <= max_len] for s in pair]
    script = []
    for t in range(turns):
        for i, name in enumerate(("alice", "bob")):
            f = pools[i][(t + 3 * g) % len(pools[i])]
            script.append((name, f, refs[f.stem]))
    sub = tmp / f"guild{g}"
    sub.mkdir()
    return build_call(sub, script, gap=0.7, lead=0.5)


def run_setting(config, transcriber, calls, shared: bool) -> tuple[list[GuildResult], float, dict]:
    from bot.asr.scheduler import TranscriptionScheduler
    from bot.replay import Track, replay

    asr = config.asr
    scheduler = (
        TranscriptionScheduler(transcriber, workers=asr.workers, batch_size=asr.batch_size, queue_size=asr.queue_size)
        if shared
        else None
    )
    from storage import open_database

    for g, (_, _, tmp) in enumerate(calls):
        # Migrated one after the other (Alembic's command API is not for two threads at once).
        path = tmp / f"guild{g}-{'shared' if shared else 'own'}.db"
        path.unlink(missing_ok=True)
        open_database(str(path)).close()
    results: list[GuildResult | None] = [None] * len(calls)
    errors: list[BaseException] = []
    t0 = time.perf_counter()

    def guild(g: int, tracks, placed, tmp: Path) -> None:
        try:
            time.sleep(2.0 * g / max(len(calls), 1))  # the guilds' calls do not start in step
            summary = replay(
                config,
                [Track(k, str(v)) for k, v in tracks.items()],
                db_url=str(tmp / f"guild{g}-{'shared' if shared else 'own'}.db"),
                speed=1.0,
                out=io.StringIO(),
                transcriber=transcriber,
                scheduler=scheduler,
                hints=False,
            )
            results[g] = GuildResult(
                g,
                summary.latencies,
                summary.queue_delays,
                sum(p.speech_end - p.speech_start for p in placed),
                len(summary.latencies),
                time.perf_counter() - t0,
            )
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=guild, args=(g, *call)) for g, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stats = {}
    if scheduler is not None:
        s = scheduler.stats()
        stats = {"source_waits": s.source_waits, "turned_away": s.turned_away, "errors": s.errors}
        scheduler.close()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None], wall, stats


def main() -> None:
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber
    from bot.config import load_config
    from bot.replay import percentile

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=base_dir(), help="model directory or size name (default: whisper-base)")
    ap.add_argument("--guilds", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--turns", type=int, default=3, help="turns per person in each guild's call")
    args = ap.parse_args()

    config = load_config(None, env={**os.environ, "STALK_ASR_MODEL": args.model, "STALK_ASR_LANGUAGE": "en"})
    asr = config.asr
    transcriber = WhisperTranscriber(
        load_whisper(asr.model, workers=asr.workers, cpu_threads=asr.cpu_threads, search_dirs=config.models.dirs),
        asr.model,
    )
    print(
        f"model {Path(asr.model).name} {asr.compute_type}, {asr.workers} workers, batch {asr.batch_size}, "
        f"{os.cpu_count()} cores; {args.turns} turns each of two people per guild, real time"
    )
    tmp = Path(tempfile.mkdtemp())
    calls = [(*make_guild(tmp, g, args.turns), tmp) for g in range(max(args.guilds))]
    rows = []
    for n in args.guilds:
        for shared in (False, True):
            results, wall, stats = run_setting(config, transcriber, calls[:n], shared)
            p95s = [percentile(r.latencies, 95) for r in results]
            delays = [d for r in results for d in r.queue_delays]
            speech = sum(r.speech_seconds for r in results)
            utts = sum(r.utterances for r in results)
            row = {
                "guilds": n,
                "mode": "shared scheduler" if shared else "pool per session",
                "p95_by_guild": p95s,
                "worst_p95": max(p95s),
                "best_p95": min(p95s),
                "queue_p95": percentile(delays, 95),
                "speech_per_s": speech / wall,
                "utt_per_s": utts / wall,
                "utterances": utts,
                "wall": wall,
                **stats,
            }
            rows.append(row)
            print(
                f"{n} guild(s), {row['mode']:<16}: p95 last word -> stored by guild "
                + " ".join(f"{p:.2f}" for p in p95s)
                + f" s (worst {row['worst_p95']:.2f}, best {row['best_p95']:.2f}); queue p95 {row['queue_p95']:.2f} s; "
                f"throughput {row['speech_per_s']:.2f} s speech/s, {row['utt_per_s']:.2f} utt/s "
                f"({utts} utterances, {wall:.0f} s)"
                + (f"; source waits {stats['source_waits']}" if stats.get("source_waits") else ""),
                flush=True,
            )
    print("\n| guilds | mode | p95 by guild (s) | worst p95 | queue p95 | speech s/s | utt/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['guilds']} | {r['mode']} | {' '.join(f'{p:.2f}' for p in r['p95_by_guild'])} | "
            f"{r['worst_p95']:.2f} | {r['queue_p95']:.2f} | {r['speech_per_s']:.2f} | {r['utt_per_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
