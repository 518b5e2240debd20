"""The processed dataset as the training, unlearning and evaluation stages see it.

`ProcessedDataset.open(ds)` gathers what the data stages wrote for one dataset under
data/processed/<ds>: the motion store (features), Mean/Std and the forget/retain split, and,
read when first used, the tagged captions (captions.parquet), the generator's text condition of
every caption (text_emb.npy, same row order) and the token tables (tokens_<codebook>.npz).

It is the one place that selects motions: store rows by partition (train/val/test) and set
(forget/retain/all), and, for given rows, their ids, sets, features and captions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hmu.data.store import MotionStore
from hmu.io import atomic_path
from hmu.params import processed_dir

SETS = ("all", "forget", "retain")


@dataclass(frozen=True)
class TokenTable:
    """The codes `tokenize` cached for every stored motion (store order, all partitions)."""

    tokens: np.ndarray  # (N, L, Q) int16, -1 past each motion's length
    n_tokens: np.ndarray  # (N,) tokens per motion
    nb_code: int  # codebook size of the VQ-VAE that made them


def write_tokens(path: str | Path, table: TokenTable) -> None:
    """Write a token table (.npz: tokens int16, n_tokens int64, nb_code) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            tokens=table.tokens.astype(np.int16),
            n_tokens=table.n_tokens.astype(np.int64),
            nb_code=np.int64(table.nb_code),
        )


@dataclass
class ProcessedDataset:
    name: str
    store: MotionStore
    mean: np.ndarray  # (263,)
    std: np.ndarray  # (263,)
    splits: pd.DataFrame  # motion_id, partition, set, matched, concept
    folder: Path  # data/processed/<name>
    _captions: pd.DataFrame | None = field(default=None, repr=False)
    _row_splits: pd.DataFrame | None = field(default=None, repr=False)
    _caption_groups: dict | None = field(default=None, repr=False)

    @classmethod
    def open(cls, name: str, root: str | Path | None = None) -> ProcessedDataset:
        """Open data/processed/<name> (or `root`); captions are read when first used."""
        folder = Path(root) if root else processed_dir(name)
        motions = folder / "motions"
        return cls(
            name=name,
            store=MotionStore.open(motions),
            mean=np.load(motions / "Mean.npy"),
            std=np.load(motions / "Std.npy"),
            splits=pd.read_parquet(folder / "splits.parquet"),
            folder=folder,
        )

    # ------------------------------------------------------------ rows

    def _splits_by_row(self) -> pd.DataFrame:
        """partition and set of every store row (NaN for motions the split does not list)."""
        if self._row_splits is None:
            table = self.store.table[["motion_id"]]
            self._row_splits = table.merge(self.splits, on="motion_id", how="left")
        return self._row_splits

    def select(self, partition: str, subset: str = "all") -> np.ndarray:
        """Store rows of motions in `partition` and `subset` (all/forget/retain), in store order."""
        if subset not in SETS:
            raise ValueError(f"subset must be one of {SETS}, got {subset!r}")
        info = self._splits_by_row()
        mask = info["partition"].eq(partition).to_numpy()
        if subset != "all":
            mask = mask & info["set"].eq(subset).to_numpy()
        return np.flatnonzero(mask)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """Motion ids of the given store rows."""
        return self.store.table["motion_id"].to_numpy()[rows]

    def sets(self, rows: np.ndarray) -> np.ndarray:
        """'forget' or 'retain' of the given store rows (NaN where the split has no entry)."""
        return self._splits_by_row()["set"].to_numpy()[rows]

    def motions(self, rows: np.ndarray) -> list[np.ndarray]:
        """Raw feature arrays (T, 263) of the given store rows."""
        return [self.store.get(int(r)) for r in rows]

    # ------------------------------------------------------------ captions

    @property
    def captions(self) -> pd.DataFrame:
        """captions.parquet: motion_id, caption_index, caption, tokens, start, end."""
        if self._captions is None:
            self._captions = pd.read_parquet(self.folder / "captions.parquet")
        return self._captions

    def caption_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Per store row, the positions of its captions in `captions` (= rows of text_emb)."""
        if self._caption_groups is None:
            self._caption_groups = self.captions.groupby("motion_id", sort=False).indices
        ids = self.ids(rows)
        missing = [m for m in ids if m not in self._caption_groups]
        if missing:
            raise ValueError(
                f"{self.name}: {len(missing)} motions have no caption, e.g. {missing[:5]}"
            )
        return [np.asarray(self._caption_groups[m], dtype=np.int64) for m in ids]

    def captions_of(self, rows: np.ndarray) -> list[pd.DataFrame]:
        """Per store row, its caption rows (a frame each, same order as `rows`)."""
        return [self.captions.iloc[positions] for positions in self.caption_rows(rows)]

    def captions_in(self, rows: np.ndarray) -> pd.DataFrame:
        """The captions of the given motions as one frame, in captions.parquet order."""
        return self.captions[self.captions["motion_id"].isin(set(self.ids(rows)))]

    # ------------------------------------------------------------ derived tables

    def text_emb(self) -> np.ndarray:
        """text_emb.npy: the generator's text condition of every caption row (C_rows, C)."""
        path = self.folder / "text_emb.npy"
        emb = np.load(path)
        if len(emb) != len(self.captions):
            raise ValueError(
                f"{path} has {len(emb)} rows, captions.parquet {len(self.captions)}: "
                f"rerun text_emb@{self.name}"
            )
        return emb

    def tokens(self, codebook: str) -> TokenTable:
        """tokens_<codebook>.npz: the codes of every stored motion under vq_<codebook>."""
        path = self.folder / f"tokens_{codebook}.npz"
        cached = np.load(path)
        table = TokenTable(cached["tokens"], cached["n_tokens"], int(cached["nb_code"]))
        if len(table.tokens) != len(self.store):
            raise ValueError(
                f"{path} has {len(table.tokens)} motions, the store {len(self.store)}: "
                f"rerun tokenize@{self.name}-{codebook}"
            )
        return table


def tokens_of(captions: pd.DataFrame) -> list[list[str]]:
    """Token lists ["word/POS", ...] of a captions frame's space-joined `tokens` column."""
    return [t.split() for t in captions["tokens"].fillna("")]


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
