"""Benchmark: search, listing and deletion on a large SQLite database of real transcripts.

Fills a database with SESSIONS calls of UTTERANCES utterances each, whose texts are the
reference transcripts of ../shared/data (LibriSpeech English, Common Voice Korean, AISHELL /
FLEURS Mandarin), spread over 10 guilds and 40 members, then prints CPU time (this process:
SQLite runs in it) for:
- inserting with the full-text index kept by triggers vs. the same rows with the triggers
  dropped (the cost the index adds to every stored utterance);
- searches: 3+ character terms (trigram index) and 1-2 character terms (LIKE over the
  viewer's rows), as the operator and as a member who attended a few calls;
- listing a page, a transcript page, autocomplete;
- deleting one call for good (index optimize included) and purging 10% of the calls.

    python benchmarks/bench_logs.py [--sessions 2000] [--utterances 50]

CPU time rather than wall time: the machine is shared, wall time is disturbed by others.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text  # noqa: E402

from storage import open_database  # noqa: E402
from storage.access import Viewer  # noqa: E402
from storage.deletion import delete_session  # noqa: E402
from storage.models import CallSession, Participant, Utterance, utcnow  # noqa: E402
from storage.queries import find_sessions, list_page, show_page  # noqa: E402
from storage.retention import purge_older_than  # noqa: E402
from storage.search import search  # noqa: E402
from tests.calls import shared  # noqa: E402


def texts() -> list[str]:
    out = [
        line.split("\t")[1].capitalize()
        for line in shared("data", "librispeech", "trans.tsv").read_text(encoding="utf-8").splitlines()
    ]
    out += [
        line.split("\t")[2] for line in shared("data", "korean", "trans.tsv").read_text(encoding="utf-8").splitlines()
    ]
    out += [
        line.split("\t")[1]
        for line in shared("data", "chinese", "trans.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    return out


def fill(db, n_sessions: int, n_utts: int, pool: list[str], rng: random.Random) -> float:
    cpu = time.process_time()
    now = utcnow()
    with db.write_session() as s, s.begin():
        for i in range(n_sessions):
            sid = s.execute(
                insert(CallSession).values(
                    source="discord",
                    guild_id=f"G{i % 10}",
                    status="completed",
                    title=f"call {i}",
                    started_by=f"u{i % 40}",
                    started_at=now - timedelta(hours=n_sessions - i),
                )
            ).inserted_primary_key[0]
            pids = [
                s.execute(
                    insert(Participant).values(session_id=sid, name=f"user{u}", user_id=f"u{u}", joined_at=0.0)
                ).inserted_primary_key[0]
                for u in rng.sample(range(40), 3)
            ]
            s.execute(
                insert(Utterance),
                [
                    dict(
                        session_id=sid,
                        participant_id=rng.choice(pids),
                        start=k * 4.0,
                        end=k * 4.0 + 3.0,
                        transcribed_at=k * 4.0 + 4.0,
                        created_at=now,
                        text=rng.choice(pool),
                    )
                    for k in range(n_utts)
                ],
            )
    return time.process_time() - cpu


def cpu_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        cpu = time.process_time()
        fn()
        best = min(best, time.process_time() - cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--utterances", type=int, default=50)
    args = parser.parse_args()
    pool = texts()
    n = args.sessions * args.utterances
    with tempfile.TemporaryDirectory() as tmp:
        plain = open_database(str(Path(tmp) / "plain.db"))
        with plain.engine.begin() as conn:
            for trig in ("utterances_fts_insert", "utterances_fts_delete", "utterances_fts_update"):
                conn.execute(text(f"DROP TRIGGER {trig}"))
        t_plain = fill(plain, args.sessions, args.utterances, pool, random.Random(1))
        plain.close()
        path = Path(tmp) / "calls.db"
        db = open_database(str(path))
        t_fts = fill(db, args.sessions, args.utterances, pool, random.Random(1))
        size = path.stat().st_size / 1e6
        print(f"{args.sessions} calls, {n} utterances of real transcripts; database {size:.0f} MB")
        print(
            f"insert: {t_plain / n * 1e6:.0f} us/utterance without the index, "
            f"{t_fts / n * 1e6:.0f} us with it (x{t_fts / t_plain:.2f})"
        )
        operator = Viewer.cli_operator()
        member = Viewer.member("u7", "G7")
        seen = list_page(db, member, page_size=1).total
        print(f"member u7 in guild G7 attended {seen} calls")
        for term in ("reciter", "the", "법원에", "기침을", "房地产", "法院", "北京", "회의", "he"):
            hits = search(db, operator, term).total
            print(
                f"search {term!r:10} ({len(term)} chars, {'trigram' if len(term) >= 3 else 'LIKE'}): "
                f"operator {cpu_of(lambda term=term: search(db, operator, term)) * 1e3:7.1f} ms ({hits} hits), "
                f"member {cpu_of(lambda term=term: search(db, member, term)) * 1e3:6.1f} ms"
            )
        print(
            f"list page (member): {cpu_of(lambda: list_page(db, member)) * 1e3:.1f} ms; "
            f"transcript page: {cpu_of(lambda: show_page(db, operator, 5, max_chars=4096)) * 1e3:.1f} ms; "
            f"autocomplete '1': {cpu_of(lambda: find_sessions(db, member, '1')) * 1e3:.1f} ms"
        )
        cpu = time.process_time()
        delete_session(db, operator, 10)
        print(f"delete one call for good (FTS optimize included): {(time.process_time() - cpu) * 1e3:.0f} ms")
        cutoff_days = (args.sessions * 0.9) / 24
        cpu = time.process_time()
        purged = purge_older_than(db, cutoff_days)
        print(
            f"purge {purged.sessions} calls ({purged.utterances} utterances): "
            f"{(time.process_time() - cpu) * 1e3:.0f} ms"
        )
        db.close()


if __name__ == "__main__":
    main()
