"""Benchmark: topic hints at lulls.

Prints, for the machine it runs on:
- lull detected -> suggestion delivered (p50, p95) with a model that takes 10 s per answer
  (a local OpenAI-compatible server that sleeps 10 s, then answers with questions on words of
  the latest lines, never the same twice), on a replayed call of
  real speech with lulls at known times: in simulated call time (``--speed 0``, where the
  model's 10 s are counted in call time), and paced in real time (``--realtime``);
- how often the suggestions delivered came from the model rather than the built-in fallback;
- the real server's generation time per answer (llama-cpp-python with SmolLM2-135M-Instruct,
  one thread): wall time and the server process's CPU time, and how many answers were usable;
- the share of delivered suggestions that mention a salient term of the last three minutes of
  talk (terms from the reference transcripts of the turns before the lull), for the real
  model's suggestions and for the built-in ones.

    python benchmarks/bench_hints.py [--realtime] [--requests 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.replay import percentile  # noqa: E402
from tests.calls import tiny_en_dir  # noqa: E402
from tests.hints.conftest import THREE_LULLS, english_script, hints_config, place, replay_call  # noqa: E402
from tests.hints.servers import LlamaServer, ScriptedServer  # noqa: E402

THRESHOLD = 5.0
# Six lulls of 8-9 s, each after a few turns of two people.
SIX_LULLS = THREE_LULLS + [
    ("alice", 1.0),
    ("bob", 1.0),
    ("alice", 8.5),
    ("bob", 1.0),
    ("alice", 1.0),
    ("bob", 9.0),
    ("alice", 1.0),
    ("bob", 1.0),
    ("alice", 8.0),
    ("bob", 1.0),
]


def transcriber():
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    return WhisperTranscriber(load_whisper(tiny_en_dir(), workers=2), "tiny.en")


def latencies(run) -> list[float]:
    return [h["at"] - (h["silence"] + THRESHOLD) for h in run.hints]


def grounded(run, call, horizon: float = 180.0) -> tuple[list[bool], list[bool]]:
    """Per delivered suggestion, does it name a salient term of the talk before it? (model, fallback)."""
    from bot.hints.terms import Line, mentions, salient_terms

    model, fallback = [], []
    stored = {(round(s.at, 2), s.text): s.source for s in run.detail.suggestions}
    for h in run.hints:
        lines = [
            Line(t.speaker, t.text, t.speech_end)
            for t in call.turns
            if h["at"] - horizon <= t.speech_end <= h["silence"] + 0.5
        ]
        terms = salient_terms(lines, h["at"])
        for text in h["texts"]:
            hit = any(mentions(text, term) for term in terms)
            (fallback if stored.get((round(h["at"], 2), text)) == "fallback" else model).append(hit)
    return model, fallback


def share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({100 * sum(flags) / len(flags):.0f}%)" if flags else "n/a"


def lull_check_cost(checks: int = 20000) -> None:
    """CPU per lull check (run for every fed frame of every speaker at --speed 0) after 10 minutes of talk."""
    from bot.hints.lull import LullDetector, LullOptions
    from bot.hints.state import ConversationState

    state = ConversationState()
    state.joined("a"), state.joined("b")
    t = 0.0
    for i in range(300):  # a turn every 2 s
        state.speech_started("ab"[i % 2], t)
        state.speech_ended("ab"[i % 2], t + 1.8)
        t += 2.0
    detector = LullDetector(state, LullOptions())
    state.speech_started("a", t)
    cpu0 = time.process_time()
    for _ in range(checks):
        detector.check(t + 0.5)
    cpu = time.process_time() - cpu0
    print(
        f"lull check while someone speaks, 300 stretches of history: {cpu / checks * 1e6:.1f} us CPU per check "
        f"(process time)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realtime", action="store_true", help="also replay one call paced in real time")
    ap.add_argument("--requests", type=int, default=8, help="requests to the real server")
    args = ap.parse_args()

    lull_check_cost()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hints-"))
    asr = transcriber()
    call = place(tmp, english_script(SIX_LULLS))
    print(
        f"call: {call.length:.0f} s, two people, {len(call.silences(THRESHOLD))} silences of 8-9 s "
        f"(LibriSpeech test-other, tiny.en), lull threshold {THRESHOLD:g} s, cooldown 20 s"
    )

    slow = ScriptedServer()
    try:
        cfg = hints_config(
            llm_base_url=slow.url("varied-10"),
            llm_model="slow-10s",
            hints_cooldown_seconds=20,
            hints_prepare_interval_seconds=0,
            llm_timeout_seconds=30,
        )
        (tmp / "slow").mkdir()
        t0 = time.perf_counter()
        run = replay_call(cfg, call, tmp / "slow", asr)
        wall = time.perf_counter() - t0
        lat = latencies(run)
        from_model = sum(1 for s in run.detail.suggestions if s.source != "fallback")
        print(
            f"\n10 s-per-answer model, --speed 0 (simulated call time), {len(lat)} lulls "
            f"({wall:.0f} s wall, {slow.count('varied-10')} requests):"
        )
        print(
            f"  lull detected -> delivered: p50 {percentile(lat, 50):.3f} s, p95 {percentile(lat, 95):.3f} s, "
            f"max {max(lat):.3f} s"
        )
        print(
            f"  suggestions from the model: {from_model}/{len(run.detail.suggestions)} "
            f"(the rest built in: the prepared set was used already, or none was ready yet)"
        )
        if args.realtime:
            (tmp / "rt").mkdir()
            rt_call = place(tmp / "rt", english_script(THREE_LULLS))
            before = slow.count("varied-10")
            import io

            from bot.replay import Track, replay
            from tests.hints.conftest import parse_hints

            out = io.StringIO()
            replay(
                cfg,
                [Track(n, str(p)) for n, p in rt_call.tracks.items()],
                db_url=str(tmp / "rt" / "c.db"),
                speed=1.0,
                out=out,
                transcriber=asr,
            )
            hints = parse_hints(out.getvalue())
            lat_rt = [h["at"] - (h["silence"] + THRESHOLD) for h in hints]
            print(
                f"  paced in real time ({rt_call.length:.0f} s call, {len(hints)} lulls, "
                f"{slow.count('varied-10') - before} requests): lull detected -> delivered "
                f"{', '.join(f'{x:.2f} s' for x in lat_rt)}; "
                f"from the model: {sum(1 for h in hints for _ in h['texts'] if h['source'] != 'fallback')}"
                f"/{sum(len(h['texts']) for h in hints)}"
            )
    finally:
        slow.close()

    server = LlamaServer(threads=1)
    try:
        from bot.hints.llm import LlmError, LlmSettings, LlmSuggester
        from bot.hints.terms import Line

        s = LlmSuggester(
            LlmSettings(
                base_url=server.base_url,
                model=server.model,
                api_key="",
                timeout=120,
                connect_timeout=3,
                temperature=0.7,
                max_tokens=300,
                structured="auto",
            )
        )
        turns = sorted(call.turns, key=lambda t: t.speech_start)
        walls, cpus, usable = [], [], 0
        for i in range(args.requests):
            window = [Line(t.speaker, t.text, t.speech_end, "en") for t in turns[max(0, i) : i + 5]]
            cpu0, w0 = server.cpu_seconds(), time.perf_counter()
            try:
                s.suggest(window, "en", [])
                usable += 1
            except LlmError:
                pass
            walls.append(time.perf_counter() - w0)
            cpus.append(server.cpu_seconds() - cpu0)
        print(
            f"\nreal server (llama-cpp-python 0.3.36, SmolLM2-135M-Instruct Q4_1, 1 thread), {len(walls)} requests "
            f"of 5-turn windows:"
        )
        print(
            f"  generation: wall p50 {statistics.median(walls):.2f} s, p95 {percentile(walls, 95):.2f} s; "
            f"server CPU p50 {statistics.median(cpus):.2f} s, p95 {percentile(cpus, 95):.2f} s per answer"
        )
        print(f"  usable answers (at least one suggestion passing the checks): {usable}/{len(walls)}")

        cfg = hints_config(
            llm_base_url=server.base_url,
            llm_model=server.model,
            llm_timeout_seconds=120,
            hints_cooldown_seconds=20,
            hints_prepare_interval_seconds=10,
        )
        (tmp / "real").mkdir()
        run = replay_call(cfg, call, tmp / "real", asr)
        model, fallback = grounded(run, call)
        print(
            f"\nreplayed call with the real model: {len(run.hints)} hints, "
            f"{len(model)} suggestions from the model, {len(fallback)} built in"
        )
        print(
            f"  mention a salient term of the last 3 minutes of talk: model {share(model)}, built-in {share(fallback)}"
        )
        examples = [s.text for s in run.detail.suggestions if s.source != "fallback"][:3]
        examples += [s.text for s in run.detail.suggestions if s.source == "fallback"][:2]
        for text in examples:
            print(f"    e.g. {text}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
