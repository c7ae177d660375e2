"""Finding and loading the Whisper model: a local directory, an offline mirror, or a download."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from bot.errors import ModelError

log = logging.getLogger(__name__)

# Files a CTranslate2 Whisper model directory needs (the same list faster-whisper downloads).
_MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


def _size_names() -> dict[str, str]:
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and not re.fullmatch(r"[\w.-]+/[\w.-]+", name)


def resolve_model(name: str, search_dirs: list[str] | tuple[str, ...] = (), download_root: str = "") -> str:
    """Return a local directory holding the CTranslate2 model ``name``.

    ``name`` is a directory, a size name (``base``, ``tiny.en`` ...) or a Hugging Face repo
    id. Size names are looked up in ``search_dirs`` (as ``N/`` or ``whisper-N/``), then in
    the download cache, and only then downloaded, with a progress bar.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_model_dir(path):
            raise ModelError(f"{path} is not a faster-whisper model directory (it has no model.bin)",
                             "point STALK_ASR_MODEL at a CTranslate2 Whisper model folder, or use a size name such as base")
        return str(path)
    if _looks_like_path(name):
        raise ModelError(f"Whisper model directory {path} not found",
                         "check the path in asr.model / STALK_ASR_MODEL, or use a size name such as base")

    sizes = _size_names()
    if "/" in name:
        repo_id = name
    elif name in sizes:
        repo_id = sizes[name]
        for folder in search_dirs:
            base = Path(folder).expanduser()
            for candidate in (base / name, base / f"whisper-{name}", base / f"faster-whisper-{name}"):
                if _is_model_dir(candidate):
                    log.info("using Whisper %s from %s", name, candidate)
                    return str(candidate.resolve())
    else:
        raise ModelError(f"unknown Whisper model {name!r}",
                         "use a size name (" + ", ".join(sizes) + ") or a model directory")
    return _download(repo_id, download_root)


def _download(repo_id: str, download_root: str) -> str:
    import huggingface_hub

    cache_dir = str(Path(download_root).expanduser()) if download_root else None
    try:
        return huggingface_hub.snapshot_download(repo_id, allow_patterns=_MODEL_FILES, cache_dir=cache_dir,
                                                 local_files_only=True)
    except Exception:
        pass  # not cached yet: download below
    print(f"Downloading Whisper model {repo_id} (first use only) ...", flush=True)
    try:
        # snapshot_download draws a progress bar per file on stderr.
        return huggingface_hub.snapshot_download(repo_id, allow_patterns=_MODEL_FILES, cache_dir=cache_dir)
    except Exception as exc:
        raise ModelError(f"cannot download Whisper model {repo_id} ({type(exc).__name__}: {str(exc)[:200]})",
                         "connect to the internet once, or set STALK_ASR_MODEL to a local model directory") from None


def load_whisper(name: str, *, device: str = "cpu", compute_type: str = "int8", workers: int = 1,
                 cpu_threads: int = 0, search_dirs: list[str] | tuple[str, ...] = (), download_root: str = ""):
    """Load one WhisperModel that ``workers`` threads may use at once."""
    from faster_whisper import WhisperModel

    path = resolve_model(name, search_dirs, download_root)
    if cpu_threads <= 0:
        # The workers share the cores; more threads than cores only adds contention.
        cpu_threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    try:
        return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                            num_workers=workers)
    except Exception as exc:
        raise ModelError(f"cannot load the Whisper model in {path} ({type(exc).__name__}: {str(exc)[:200]})",
                         "the folder may be incomplete or corrupt: delete it to download again, "
                         "or choose another asr.model") from None
