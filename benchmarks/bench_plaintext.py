"""CPU time of making hostile text plain, for n and 4n characters (issue 13, case 6).

Linear work costs about 4x for 4x the input; the old hint sanitizer's URL pattern (kept here
as ``OLD_URL`` for the comparison) cost 16x, 1.4 s of CPU for 8 kB of "a." on a shared 2-core
machine. storage.plaintext looks at most at ``MAX_INPUT`` characters (16 kB), so the default sizes
stay below it: beyond it the cost stops growing. Each figure is the best of a few runs of
``time.process_time``.

    python benchmarks/bench_plaintext.py [--n 4096]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.hints.llm import validate  # noqa: E402
from bot.hints.terms import Line  # noqa: E402
from storage.plaintext import MAX_INPUT, for_discord, for_prompt, has_link  # noqa: E402

# bot/hints/sanitize.py before issue 13, for the "before" column.
OLD_URL = re.compile(
    r"(?i)\b(?:https?://|ftp://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|gg|ly|me|co|"
    r"xyz|info|app|dev|ru|kr|uk|de|link|site|online|shop|top|click)\b(?:/\S*)?"
)

SHAPES = {
    "a.a.a.": lambda n: "a." * (n // 2),
    "a-a-a-.": lambda n: "a-" * (n // 2) + ".",
    "long word": lambda n: "a" * n,
    "</</": lambda n: "</" * (n // 2),
    "ESC[0;0;": lambda n: "\x1b[" + "0;" * (n // 2),
    "a .a .": lambda n: "a ." * (n // 3),
    "words + link": lambda n: "word " * (n // 5) + "evil.tk/x",
}
LINES = [Line("ann", "we talked about the harbour and the captain", 3.0, "en")]


def cpu(work, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        work()
        best = min(best, time.process_time() - t0)
    return best


def suggestion(text: str) -> None:
    validate([text], transcript=LINES, language="en", count=3, max_chars=120, avoid=[])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=MAX_INPUT // 4, help=f"characters of the smaller input ({MAX_INPUT // 4})")
    n = ap.parse_args().n
    eight = "a." * 4096
    print(f"the old URL pattern on 8 kB of 'a.' (the issue's case): {cpu(lambda: OLD_URL.search(eight), 1):.2f} s CPU")
    print(f"CPU seconds for n = {n} and 4n = {4 * n} characters (best of 3); ratio 4 = linear, 16 = quadratic")
    print(f"{'input':<14}{'what':<22}{'n':>10}{'4n':>10}{'ratio':>8}")
    for shape, make in SHAPES.items():
        small, big = make(n), make(4 * n)
        rows = [
            ("old URL pattern", lambda t: OLD_URL.search(t)),
            ("suggestion checks", suggestion),
            ("has_link", has_link),
            ("for_discord", for_discord),
            ("for_prompt", for_prompt),
        ]
        for what, fn in rows:
            a = cpu(lambda fn=fn, t=small: fn(t))
            b = cpu(lambda fn=fn, t=big: fn(t), repeat=1 if what.startswith("old") else 3)
            ratio = b / a if a > 0 else float("nan")
            print(f"{shape:<14}{what:<22}{a:>10.4f}{b:>10.4f}{ratio:>8.1f}")


if __name__ == "__main__":
    main()
