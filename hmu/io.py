"""Atomic file writes and small I/O helpers shared by every stage.

Every output goes to a temporary file in the destination folder first and is then renamed,
so an interrupted stage never leaves a half-written file behind that a later stage would read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; follow the umask like open()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (sorted keys, indented, so diffs stay readable)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a .npy file atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def write_parquet(path: str | os.PathLike, table) -> None:
    """Write a pandas DataFrame to parquet atomically (pyarrow engine, no index)."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; a missing or corrupt file raises an error that names it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (run the stage that writes it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
