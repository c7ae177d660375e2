"""Finding, fetching and running a WeSpeaker-format ONNX speaker-embedding model.

Such a model takes ``feats [batch, frames, mel_bins]`` and returns ``embs [batch, dim]``.
Embeddings are L2-normalised here, so a dot product is the cosine score. A model is
identified by the sha256 of its file: voiceprints remember it, and a voiceprint is never
scored against embeddings of another model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.errors import ModelError, network_reason
from bot.speaker.frontend import FrontEnd

log = logging.getLogger(__name__)

# WeSpeaker's VoxCeleb ResNet34-LM runtime model (CC BY 4.0, from the VoxCeleb data), as
# published by the WeSpeaker authors on Hugging Face; the digest is Git LFS's for that file.
DEFAULT_MODEL_NAME = "voxceleb_resnet34_LM"
DEFAULT_MODEL_URL = (
    "https://huggingface.co/Wespeaker/wespeaker-voxceleb-resnet34-LM/resolve/main/voxceleb_resnet34_LM.onnx"
)
DEFAULT_MODEL_SHA256 = "7bb2f06e9df17cdf1ef14ee8a15ab08ed28e8d0ef5054ee135741560df2ec068"
CACHE_DIR = "~/.cache/s-talk/models"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_like_path(name: str) -> bool:
    return name.endswith(".onnx") or os.sep in name or "/" in name or name.startswith("~")


def resolve_speaker_model(name: str = "auto", search_dirs: Sequence[str] = (), *, download: bool = True) -> Path:
    """A local ONNX file for ``name``: a path, ``auto`` or a model name.

    ``auto`` takes the default model if it is in ``<dir>/speaker/`` of a search folder or in the
    cache, else any ``*.onnx`` in those ``speaker/`` folders, else downloads the default. A
    name N is looked for as ``N.onnx`` in the same places.
    """
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(
                f"speaker model {path} not found", "check speaker.model / STALK_SPEAKER_MODEL, or set it to auto"
            )
        return path
    folders = [Path(d).expanduser() for d in (*search_dirs, CACHE_DIR)]
    wanted = DEFAULT_MODEL_NAME if name == "auto" else name
    for folder in folders:
        for candidate in (folder / "speaker" / f"{wanted}.onnx", folder / f"{wanted}.onnx"):
            if candidate.is_file():
                return candidate
    if name == "auto":
        for folder in folders:
            found = sorted((folder / "speaker").glob("*.onnx")) if (folder / "speaker").is_dir() else []
            if found:
                log.info("using speaker model %s", found[0])
                return found[0]
    if wanted != DEFAULT_MODEL_NAME:
        raise ModelError(
            f"speaker model {name!r} not found in " + ", ".join(str(f / "speaker") for f in folders),
            "put NAME.onnx there, give a path, or use auto",
        )
    if not download:
        raise ModelError(
            f"speaker model {DEFAULT_MODEL_NAME} is not downloaded yet",
            "run once with internet access, or set speaker.model to a WeSpeaker ONNX file",
        )
    return download_default_model(Path(CACHE_DIR).expanduser() / "speaker")


def download_default_model(
    folder: Path, url: str = DEFAULT_MODEL_URL, sha256: str = DEFAULT_MODEL_SHA256, out=None
) -> Path:
    """Fetch the default model with a progress line; keep it only if its digest matches."""
    out = out or sys.stderr
    target = folder / f"{DEFAULT_MODEL_NAME}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".onnx.part")
    print(f"Downloading speaker model {DEFAULT_MODEL_NAME} (first use only) from {url}", file=out, flush=True)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(part, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            done, shown = 0, 0.0
            while block := resp.read(1 << 16):
                f.write(block)
                h.update(block)
                done += len(block)
                if time.monotonic() - shown > 0.5:
                    shown = time.monotonic()
                    pct = f"{100 * done / total:5.1f}%" if total else ""
                    print(f"\r  {done / 1e6:6.1f} MB {pct}", end="", file=out, flush=True)
        print(f"\r  {done / 1e6:6.1f} MB done", file=out, flush=True)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"speaker model {DEFAULT_MODEL_NAME} is not on this machine and cannot be downloaded from {url}: "
            f"{network_reason(exc)}",
            "connect to the internet once, or set speaker.model to a WeSpeaker ONNX file",
        ) from None
    if h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"the downloaded speaker model has sha256 {h.hexdigest()}, expected {sha256}",
            "the download was damaged or the file changed upstream; try again, or set speaker.model "
            "to a WeSpeaker ONNX file you trust",
        )
    shutil.move(part, target)
    return target


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    model_id: str  # sha256 of the file
    dim: int
    frontend: FrontEnd


class SpeakerModel:
    """One onnxruntime session, shared by every thread (``run`` is thread-safe)."""

    def __init__(self, path: str | os.PathLike, *, threads: int = 1, frontend: FrontEnd | None = None) -> None:
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"speaker model {path} not found", "check speaker.model, or set it to auto")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"], sess_options=opts
            )
        except Exception as exc:  # onnxruntime has its own exception types
            raise ModelError(
                f"cannot load speaker model {path}: {str(exc).splitlines()[0][:200]}",
                "use a WeSpeaker-format ONNX file (speaker.model)",
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        fe = FrontEnd.from_metadata(meta, frontend)
        shape_in = inputs[0].shape if len(inputs) == 1 else None
        shape_out = outputs[0].shape if outputs else None
        if (
            shape_in is None
            or len(shape_in) != 3
            or shape_in[2] != fe.num_mel_bins
            or shape_out is None
            or len(shape_out) != 2
            or not isinstance(shape_out[1], int)
        ):
            got = (
                ", ".join(f"{i.name} {i.shape}" for i in inputs)
                + " -> "
                + ", ".join(f"{o.name} {o.shape}" for o in outputs)
            )
            raise ModelError(
                f"{path} is not a speaker-embedding model of the expected shape "
                f"(wanted feats [batch, frames, {fe.num_mel_bins}] -> embs [batch, dim]; got {got})",
                "use a WeSpeaker-format ONNX export (speaker.model)",
            )
        self.input_name = inputs[0].name
        self.info = ModelInfo(
            path=str(path), name=path.stem, model_id=file_sha256(path), dim=int(shape_out[1]), frontend=fe
        )
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0  # thread CPU time spent in features + inference

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def frontend(self) -> FrontEnd:
        return self.info.frontend

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """L2-normalised embedding of one stretch of 16 kHz speech."""
        return self.embed_batch([audio])[0]

    def embed_batch(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """[n, dim] L2-normalised embeddings. Audio of equal length runs in one batch; others run
        alone, because padding would change what the model's statistics pooling sees."""
        t0 = time.thread_time()
        feats = [self.frontend.features(a) if len(a) >= self.frontend.min_samples() else None for a in audios]
        result = np.zeros((len(audios), self.info.dim), np.float32)
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            if f is not None and len(f):
                groups.setdefault(len(f), []).append(i)
        for idx in groups.values():
            batch = np.stack([f for i in idx if (f := feats[i]) is not None])
            (embs,) = self.session.run(None, {self.input_name: batch})[:1]
            result[idx] = np.asarray(embs, np.float32).reshape(len(idx), -1)
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        result = np.divide(result, norms, out=np.zeros_like(result), where=norms > 0)
        with self._lock:
            self.cpu_seconds += time.thread_time() - t0
        return result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def load_speaker_model(config, *, download: bool = True) -> SpeakerModel:
    """The model ``[speaker] model`` names, found in ``[models] dirs`` or fetched."""
    s = config.speaker
    path = resolve_speaker_model(s.model, config.models.dirs, download=download)
    frontend = FrontEnd(num_mel_bins=s.num_mel_bins, frame_length_ms=s.frame_length_ms, frame_shift_ms=s.frame_shift_ms)
    return SpeakerModel(path, threads=s.threads, frontend=frontend)
