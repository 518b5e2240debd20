"""Processed motion storage: one parquet table of motions plus one large feature array.

Real datasets hold tens of thousands of small .npy files. The import stages read them once and
write a `MotionStore`: `motions.parquet` (one row per motion: motion_id, length, offset, and
any extra columns) and `features.npy` (all motions' frames concatenated, float32), so every
later stage reads two files (memory-mapped) instead of a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hmu.io import atomic_path, write_parquet

TABLE_NAME = "motions.parquet"
ARRAY_NAME = "features.npy"


def write_store(
    out_dir: str | Path,
    motion_ids: Sequence[str],
    arrays: Sequence[np.ndarray],
    columns: dict[str, Sequence] | None = None,
    array_name: str = ARRAY_NAME,
) -> pd.DataFrame:
    """Write motions (each (T, ...) float array) as one table + one concatenated array.

    Returns the table: motion_id, length (frames), offset (first row in the array), plus
    `columns` (extra per-motion values, e.g. dataset or source path).
    """
    if len(motion_ids) != len(arrays):
        raise ValueError(f"{len(motion_ids)} motion ids but {len(arrays)} arrays")
    if len(set(motion_ids)) != len(motion_ids):
        raise ValueError("duplicate motion ids in store")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = (np.cumsum(lengths) - lengths).astype(np.int64)
    table = pd.DataFrame({"motion_id": list(motion_ids), "length": lengths, "offset": offsets})
    for name, values in (columns or {}).items():
        table[name] = list(values)
    out_dir = Path(out_dir)
    _write_concatenated(out_dir / array_name, arrays, offsets, lengths)
    write_parquet(out_dir / TABLE_NAME, table)
    return table


def _write_concatenated(path: Path, arrays, offsets: np.ndarray, lengths: np.ndarray) -> None:
    """Write arrays end to end into one float32 .npy without holding a concatenated copy."""
    tail = arrays[0].shape[1:] if len(arrays) else (263,)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(int(lengths.sum()), *tail)
        )
        for array, offset, length in zip(arrays, offsets, lengths, strict=True):
            if array.shape[1:] != tail:
                raise ValueError(f"array shapes differ: {array.shape[1:]} vs {tail}")
            out[offset : offset + length] = array
        out.flush()
        del out


@dataclass
class MotionStore:
    """Read access to a store written by `write_store` (the array is memory-mapped)."""

    table: pd.DataFrame
    data: np.ndarray

    @classmethod
    def open(cls, folder: str | Path, array_name: str = ARRAY_NAME) -> MotionStore:
        """Open a store folder; raise FileNotFoundError naming the missing file."""
        folder = Path(folder)
        for name in (TABLE_NAME, array_name):
            if not (folder / name).exists():
                raise FileNotFoundError(f"motion store {folder}: missing {name}")
        table = pd.read_parquet(folder / TABLE_NAME)
        data = np.load(folder / array_name, mmap_mode="r")
        return cls(table=table, data=data)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return self.table["motion_id"].tolist()

    def index_of(self) -> dict[str, int]:
        """Map motion_id -> row number."""
        return {m: i for i, m in enumerate(self.table["motion_id"])}

    def get(self, row: int) -> np.ndarray:
        """Frames of the motion in table row `row`, (T, ...) float32 copy."""
        offset, length = self.table["offset"].iat[row], self.table["length"].iat[row]
        return np.array(self.data[offset : offset + length])

    def get_id(self, motion_id: str) -> np.ndarray:
        """Frames of the motion `motion_id`."""
        rows = np.flatnonzero(self.table["motion_id"].to_numpy() == motion_id)
        if len(rows) == 0:
            raise KeyError(f"motion {motion_id!r} not in store")
        return self.get(int(rows[0]))
