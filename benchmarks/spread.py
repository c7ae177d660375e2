"""How far model-output tests move when what differs between machines is varied on purpose.

Runs the tests that put a real model to work (marker ``slow``, or the paths given) once per
variation: CTranslate2's instruction set (``CT2_FORCE_CPU_ISA``), the Whisper threads per worker
(``STALK_TEST_ASR_THREADS``) and the voice double's impairment seeds (``STALK_TEST_SEED``).
Every bound check in ``tests/bounds.py`` records its value; this prints, per check, the bound
and the spread of the values, and every test that failed under some variation.

    python benchmarks/spread.py                      # 3 ISAs x 2 thread counts, seeds 0..5
    python benchmarks/spread.py --isa AVX2 --threads 1 tests/test_replay_call.py
    python benchmarks/spread.py --json spread.json   # the figures, for docs/
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_isas() -> list[str]:
    """The instruction sets CTranslate2 can be forced to on this CPU (AVX512 only if present)."""
    flags = Path("/proc/cpuinfo").read_text().split()
    return ["GENERIC", "AVX2"] + (["AVX512"] if "avx512f" in flags else [])


def run_variation(
    isa: str, threads: int, seed: int, targets: list[str], marker: str | None, lock: str | None
) -> tuple[list, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "spread.jsonl", Path(tmp) / "junit.xml"
        env = {
            **os.environ,
            "CT2_FORCE_CPU_ISA": isa,
            "STALK_TEST_ASR_THREADS": str(threads),
            "STALK_TEST_SEED": str(seed),
            "STALK_SPREAD_LOG": str(log),
            "PYTHONPATH": str(REPO),
        }
        # With --lock, each run holds that file's lock (flock), so other jobs measuring on the
        # same machine can take turns with this one instead of running beside it.
        cmd = (["flock", lock] if lock else []) + [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *targets,
        ]
        if marker:
            cmd += ["-m", marker]
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        outcomes = {}
        if junit.exists():
            for case in ET.parse(junit).iter("testcase"):
                name = f"{case.get('classname')}::{case.get('name')}"
                failed = case.find("failure") is not None or case.find("error") is not None
                outcomes[name] = "failed" if failed else "passed"
        print(
            f"  {isa:8} threads={threads} seed={seed}: {len(rows)} checks, "
            f"{sum(v == 'failed' for v in outcomes.values())} failed of {len(outcomes)} tests "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        return rows, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="test paths (default: every test marked slow)")
    ap.add_argument("--isa", default=",".join(cpu_isas()), help="comma-separated CT2_FORCE_CPU_ISA values")
    ap.add_argument("--threads", default="1,2", help="comma-separated threads per Whisper worker")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--lock", help="a lock file (flock) to hold while each variation runs")
    args = ap.parse_args()
    isas = [x for x in args.isa.split(",") if x]
    threads = [int(x) for x in args.threads.split(",") if x]
    marker = None if args.targets else "slow"
    variations = list(itertools.product(isas, threads))
    print(f"{len(variations)} variations of {' '.join(args.targets) or 'the slow tests'}:")
    values: dict[str, list[float]] = defaultdict(list)
    bounds: dict[str, tuple[float, str]] = {}
    failures: dict[str, list[str]] = defaultdict(list)
    for seed, (isa, n) in enumerate(variations):
        rows, outcomes = run_variation(isa, n, seed, args.targets, marker, args.lock)
        for row in rows:
            values[row["name"]].append(row["value"])
            bounds[row["name"]] = (row["bound"], row["kind"])
        for test, outcome in outcomes.items():
            if outcome == "failed":
                failures[test].append(f"{isa}/t{n}/s{seed}")

    print(f"\n{'check':44} {'bound':>7} {'n':>3} {'min':>7} {'median':>7} {'max':>7} {'margin':>7}")
    figures = []
    for name in sorted(values):
        vs = values[name]
        bound, kind = bounds[name]
        worst = max(vs) if kind == "at_most" else min(vs)
        margin = bound - worst if kind == "at_most" else worst - bound
        print(
            f"{name:44} {bound:7.3f} {len(vs):3d} {min(vs):7.3f} {statistics.median(vs):7.3f} {max(vs):7.3f} "
            f"{margin:7.3f}"
        )
        figures.append(
            {
                "check": name,
                "bound": bound,
                "kind": kind,
                "n": len(vs),
                "min": min(vs),
                "median": statistics.median(vs),
                "max": max(vs),
                "margin": margin,
            }
        )
    if failures:
        print("\ntests that failed under some variation:")
        for test, where in sorted(failures.items()):
            print(f"  {test}: {', '.join(where)}")
    else:
        print("\nno test failed under any variation")
    if args.json:
        Path(args.json).write_text(json.dumps({"checks": figures, "failures": failures}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
