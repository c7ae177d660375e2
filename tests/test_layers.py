"""The layering docs/architecture.md promises, read from the code's own imports.

Every import counts, including those inside functions and under TYPE_CHECKING: a hidden
import is still a dependency a reader has to hold in mind.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs", "storage")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:  # Alembic loads these by path, never by import
                continue
            found[_module_name(path)] = path
    return found


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (a ``from pkg import name`` of a submodule counts as
    that submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_the_import_walker_sees_imports() -> None:
    """Guard for the tests below: the walker finds known edges of each kind."""
    graph = _graph()
    assert "storage.plaintext" in graph["bot.discordbot.kit"]  # from storage.plaintext import ...
    assert "bot.pipeline" in graph["bot.live"]
    assert "storage.errors" in graph["bot.errors"]


def test_storage_imports_nothing_of_the_bot() -> None:
    graph = _graph()
    upward = {(m, t) for m, targets in graph.items() if m.startswith("storage") for t in targets}
    upward = {(m, t) for m, t in upward if not t.startswith("storage")}
    assert not upward, sorted(upward)


def test_no_discord_below_the_discord_edge() -> None:
    """Nothing of discord.py below bot/discordbot, bot/voice and the cogs: the pipeline sees
    user ids and PCM frames."""
    # doctor loads libopus through discord.py, as the bot will, to check it.
    edge = ("bot.discordbot", "bot.voice", "cogs", "bot.commands.run", "bot.doctor")
    offenders = []
    for name, path in _modules().items():
        if name.startswith(edge):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{name}: {m}" for m in mods if m == "discord" or m.startswith("discord.")]
    assert not offenders, offenders


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules() -> None:
    # A package's __init__ re-exporting its modules is its face, not a dependency of theirs.
    graph = {
        m: {t for t in ts if not (m.startswith(t + ".") and _modules()[t].name == "__init__.py")}
        for m, ts in _graph().items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_packages() -> None:
    def package(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if parts[0] == "bot" else parts[0]

    graph: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        graph.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    # Under bot/ each package (bot.voice, bot.hints ...) and each top-level module (bot.pipeline,
    # bot.config ...) is one node: none of them may import another in a circle.
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
