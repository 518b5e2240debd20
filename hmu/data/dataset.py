"""The processed dataset as the training and evaluation stages see it.

`ProcessedDataset.open(ds)` gathers what the data stages wrote for one dataset: the motion store
(features), Mean/Std, the tagged captions, and the forget/retain split. Selections are by
partition (train/val/test) and set (forget/retain/all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hmu.data.store import MotionStore
from hmu.params import processed_dir

SETS = ("all", "forget", "retain")


@dataclass
class ProcessedDataset:
    name: str
    store: MotionStore
    mean: np.ndarray  # (263,)
    std: np.ndarray  # (263,)
    captions: pd.DataFrame  # motion_id, caption_index, caption, tokens, start, end
    splits: pd.DataFrame  # motion_id, partition, set, matched, concept

    @classmethod
    def open(cls, name: str, root: str | Path | None = None) -> ProcessedDataset:
        """Open data/processed/<name> (or `root`)."""
        folder = Path(root) if root else processed_dir(name)
        motions = folder / "motions"
        splits = pd.read_parquet(folder / "splits.parquet")
        return cls(
            name=name,
            store=MotionStore.open(motions),
            mean=np.load(motions / "Mean.npy"),
            std=np.load(motions / "Std.npy"),
            captions=pd.read_parquet(folder / "captions.parquet"),
            splits=splits,
        )

    def select(self, partition: str, subset: str = "all") -> np.ndarray:
        """Store rows of motions in `partition` and `subset` (all/forget/retain), in store order."""
        if subset not in SETS:
            raise ValueError(f"subset must be one of {SETS}, got {subset!r}")
        info = self.store.table[["motion_id"]].merge(self.splits, on="motion_id", how="left")
        mask = info["partition"].eq(partition).to_numpy()
        if subset != "all":
            mask = mask & info["set"].eq(subset).to_numpy()
        return np.flatnonzero(mask)

    def motions(self, rows: np.ndarray) -> list[np.ndarray]:
        """Raw feature arrays (T, 263) of the given store rows."""
        return [self.store.get(int(r)) for r in rows]

    def captions_of(self, rows: np.ndarray) -> list[pd.DataFrame]:
        """Caption rows per store row (same order)."""
        ids = self.store.table["motion_id"].to_numpy()[rows]
        groups = dict(tuple(self.captions.groupby("motion_id", sort=False)))
        missing = [m for m in ids if m not in groups]
        if missing:
            raise ValueError(f"{self.name}: motions without captions: {missing[:5]}")
        return [groups[m] for m in ids]


def frames_tensor(store: MotionStore, rows: np.ndarray, mean, std):
    """Normalised frames of `rows` in one array, plus each motion's offset and length in it.

    Returns (data (F, 263) float32, offsets (N,), lengths (N,)); used to cut random windows
    with one vectorised gather instead of a Python loop per sample.
    """
    lengths = store.table["length"].to_numpy()[rows]
    src = store.table["offset"].to_numpy()[rows]
    index = np.concatenate([np.arange(o, o + n) for o, n in zip(src, lengths, strict=True)])
    data = (np.asarray(store.data[index]) - mean) / std
    offsets = np.cumsum(lengths) - lengths
    return data.astype(np.float32), offsets, lengths
