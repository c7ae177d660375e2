"""Writing a file whole or not at all.

``write_atomic`` writes beside the target under a temporary name, flushes it to disk, then
renames it over the target: a full disk, a crash or Ctrl+C midway leaves the old file as it
was (or no file) instead of a truncated one, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text``; raises OSError (the old file untouched) if it cannot."""
    path = Path(path)
    data = text.encode(encoding)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # A new file gets the usual permissions (mkstemp makes it private); a replaced one keeps its own.
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
