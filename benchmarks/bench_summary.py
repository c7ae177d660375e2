"""Benchmark: how long a call summary takes, and how big its prompts are.

Calls of 5, 30 and 60 minutes are stored in a temporary SQLite file from fixed reference text
(LibriSpeech's English and Common Voice's Korean reference transcripts, from ../shared/data,
two speakers taking turns, each utterance as long as its text would take to say at 14
characters a second, 1 s between turns; a long call goes round the sentences again). For each
it prints the summary time (making and storing it), the number of pieces and the largest
prompt (characters), the points kept and where they came from:

- the extractive fallback alone (no model);
- SmolLM2-135M-Instruct through llama-cpp-python's real server (one thread; ``--model``
  smollm2, the default), 5-minute calls only unless ``--model-minutes`` says more;
- any other GGUF (``--gguf PATH --alias NAME``), e.g. the Qwen2.5-1.5B model of issue 16.

    python benchmarks/bench_summary.py [--minutes 5 30 60] [--model-minutes 5] [--no-model]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.hints.llm import LlmSettings  # noqa: E402
from bot.summary.make import EXTRACTIVE, make_summary  # noqa: E402
from storage import open_database  # noqa: E402
from tests.calls import librispeech_refs, shared  # noqa: E402
from tests.hints.servers import LlamaServer  # noqa: E402
from tests.logs.conftest import sentence  # noqa: E402
from tests.summary.conftest import Line, store_call  # noqa: E402

CHARS_PER_SECOND = 14.0


def sentences(language: str) -> list[str]:
    if language == "en":
        return [sentence(t) for _, t in sorted(librispeech_refs().items())]
    rows = shared("data", "korean", "trans.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[2] for line in rows if line.count("\t") == 2]


def call(language: str, minutes: float) -> list[Line]:
    texts = sentences(language)
    speakers = ("alice", "bob") if language == "en" else ("민지", "서준")
    lines: list[Line] = []
    t = 1.0
    i = 0
    while t < minutes * 60:
        text = texts[i % len(texts)]
        length = max(1.0, len(text) / CHARS_PER_SECOND)
        lines.append(Line(speakers[i % 2], round(t, 3), round(t + length, 3), text))
        t += length + 1.0
        i += 1
    return lines


def settings(base_url: str, model: str) -> LlmSettings:
    return LlmSettings(
        base_url=base_url,
        model=model,
        api_key="",
        timeout=600.0,
        connect_timeout=3.0,
        temperature=0.2,
        max_tokens=600,
        structured="auto",
    )


def run(db_path: Path, language: str, minutes: float, llm: LlmSettings | None) -> tuple[str, str]:
    """(the figures' line, why the model's summary was not used: '' if it was or none asked)"""
    lines = call(language, minutes)
    sid = store_call(db_path, lines, language)
    with open_database(str(db_path)) as db:
        started = time.perf_counter()
        made = make_summary(db, sid, llm, retries=0)
        seconds = time.perf_counter() - started
    assert made is not None
    s = made.summary
    kinds = {k: len(s.of(k)) for k in ("topic", "decision", "todo", "question")}  # type: ignore[arg-type]
    who = "fallback" if llm is None else llm.model
    got = s.source if s.source == EXTRACTIVE else "model"
    why = f"    ({made.model_note[:300]})" if made.model_note else ""
    line = (
        f"{language}  {minutes:>4g} min  {len(lines):>4} utt  {who:<14} {seconds:8.2f} s  "
        f"pieces {made.pieces:>3}  answered {made.answers:>3}  prompt {s.prompt_chars or 0:>6} chars  "
        f"points {len(s.points):>2} from {got:<10} {kinds}"
    )
    return line, why


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 30, 60])
    ap.add_argument("--model-minutes", type=float, nargs="+", default=[5])
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--gguf", help="another GGUF model file to serve instead of SmolLM2")
    ap.add_argument("--alias", default="model", help="its name (with --gguf)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        for language in ("en", "ko"):
            for minutes in args.minutes:
                print(run(db_path, language, minutes, None)[0], flush=True)
        if args.no_model:
            return 0
        server = LlamaServer(args.threads, model_path=args.gguf, alias=args.alias if args.gguf else None, n_ctx=4096)
        try:
            llm = settings(server.base_url, server.model)
            for language in ("en", "ko"):
                for minutes in args.model_minutes:
                    cpu = server.cpu_seconds()
                    line, why = run(db_path, language, minutes, llm)
                    print(f"{line}  server CPU {server.cpu_seconds() - cpu:.1f} s", flush=True)
                    if why:
                        print(why, flush=True)
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
