"""Import a real HumanML3D-layout folder into a MotionStore and a captions table.

Input layout (EricGuo5513/HumanML3D):
    new_joint_vecs/<id>.npy   (T, 263) float features, 20 fps
    texts/<id>.txt            one caption per line: `caption#word/POS word/POS ...#start#end`
    train.txt, val.txt, test.txt (, all.txt)   one motion id per line (mirrors prefixed "M")
    Mean.npy, Std.npy         (263,) normalisation statistics

What the upstream loaders (MoMask / text-to-motion Text2MotionDataset) do, and we do too:
- keep clips with 40 <= T < 200 feature frames (cropping to 196 happens at training time);
- a caption whose start/end seconds are not both 0.0 selects frames int(start*20):int(end*20)
  of its clip and becomes a motion of its own, kept when 40 <= length < 200; upstream names it
  `<random letter A-W>_<id>`; we assign the letters A, B, C, ... in caption order instead, so
  the import is deterministic (e.g. `A_000001`); 'nan' times read as 0.0;
- a clip is kept as a whole motion only if at least one caption covers the whole clip.

Unlike upstream (which drops broken clips silently) every input that is not used is reported:
`report` maps a reason to the motion ids (or `id:line` for single captions) it affected, and
`messages` holds one line per problem naming the file. Reasons:
    errors (raise with on_error='fail'): missing_file, corrupt_npy, wrong_shape, nan_frames,
        too_short, empty_captions, bad_caption_line, duplicate_id
    filters (never raise, upstream rules): too_long, subrange_dropped, no_whole_clip_caption
A caption file with one malformed line is treated as corrupt and its clip skipped, as upstream
(whose parse error drops the clip). Blank lines are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from hmu.data.humanml import FEATURE_DIM, FPS, mean_std
from hmu.data.store import write_store
from hmu.io import write_npy, write_parquet

SPLITS = ("train", "val", "test")
KEEP_MIN_FRAMES, KEEP_MAX_FRAMES = 40, 200  # upstream loaders keep 40 <= frames < 200
SUBRANGE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVW"  # upstream's alphabet for sub-range motions
ERROR_REASONS = (
    "missing_file", "corrupt_npy", "wrong_shape", "nan_frames", "too_short", "empty_captions",
    "bad_caption_line", "duplicate_id",
)  # fmt: skip
FILTER_REASONS = ("too_long", "subrange_dropped", "no_whole_clip_caption")
CAPTION_COLUMNS = ["motion_id", "caption_index", "caption", "tokens", "start", "end"]


class _Caption(NamedTuple):
    """One caption line: its 0-based line index in the file, text, tokens and times (s)."""

    caption_index: int
    caption: str
    tokens: str
    start: float
    end: float

    @property
    def whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


class BadInputError(ValueError):
    """A problem with one input file; `reason` is one of ERROR_REASONS or FILTER_REASONS."""

    def __init__(self, reason: str, item: str, message: str):
        super().__init__(message)
        self.reason, self.item = reason, item


@dataclass
class HumanML3DImport:
    """What `import_humanml3d` wrote and found."""

    table: pd.DataFrame  # the MotionStore table (motion_id, length, offset, dataset, ...)
    captions: pd.DataFrame  # CAPTION_COLUMNS, one row per kept caption
    mean: np.ndarray  # (263,) float32
    std: np.ndarray  # (263,) float32
    mean_std_source: str  # "folder" (Mean.npy/Std.npy read) or "computed" (from kept clips)
    report: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids
    messages: list[str] = field(default_factory=list)  # one line per problem, naming the file

    def counts(self) -> dict[str, int]:
        """Number of affected ids per reason."""
        return {reason: len(ids) for reason, ids in self.report.items()}


# --------------------------------------------------------------------------- small readers


def read_split(folder: str | Path, name: str) -> list[str]:
    """Motion ids listed in `<folder>/<name>.txt` (blank lines ignored), in file order."""
    path = Path(folder) / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parse_caption_line(line: str, motion_id: str, where: str) -> tuple[str, str, float, float]:
    """`caption#tokens#start#end` -> (caption, tokens string, start s, end s)."""
    fields = line.rsplit("#", 3)
    if len(fields) != 4 or not fields[0].strip():
        raise BadInputError(
            "bad_caption_line",
            motion_id,
            f"{where}: expected 'caption#tokens#start#end', got {line!r}",
        )
    caption, tokens, start, end = (f.strip() for f in fields)
    try:
        times = [float(start), float(end)]
    except ValueError:
        raise BadInputError(
            "bad_caption_line", motion_id, f"{where}: start/end {start!r}#{end!r} are not numbers"
        ) from None
    start_s, end_s = (0.0 if math.isnan(t) else t for t in times)
    return caption, tokens, start_s, end_s


def _read_captions(path: Path, motion_id: str) -> list[_Caption]:
    """(line index, caption, tokens, start, end) of every non-blank line of a caption file."""
    if not path.is_file():
        raise BadInputError("missing_file", motion_id, f"{path}: caption file does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInputError("bad_caption_line", motion_id, f"{path}: not UTF-8 ({exc})") from None
    parsed = [
        _Caption(i, *_parse_caption_line(line, motion_id, f"{path}, line {i + 1}"))
        for i, line in enumerate(lines)
        if line.strip()
    ]
    if not parsed:
        raise BadInputError("empty_captions", motion_id, f"{path}: caption file is empty")
    return parsed


def _read_motion(path: Path, motion_id: str, min_frames: int, max_frames: int) -> np.ndarray:
    """A (T, 263) float32 feature array, validated; BadInputError names the file otherwise."""
    if not path.is_file():
        raise BadInputError("missing_file", motion_id, f"{path}: motion file does not exist")
    try:
        motion = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInputError(
            "corrupt_npy", motion_id, f"{path}: truncated or corrupt .npy ({exc})"
        ) from None
    if motion.ndim != 2 or motion.shape[1] != FEATURE_DIM or motion.dtype.kind != "f":
        raise BadInputError(
            "wrong_shape",
            motion_id,
            f"{path}: expected (T, {FEATURE_DIM}) floats, got {motion.shape} {motion.dtype}",
        )
    bad = ~np.isfinite(motion).all(axis=1)
    if bad.any():
        raise BadInputError(
            "nan_frames",
            motion_id,
            f"{path}: {bad.sum()} frame(s) with NaN/Inf, first {bad.argmax()}",
        )
    if len(motion) < min_frames:
        raise BadInputError(
            "too_short", motion_id, f"{path}: {len(motion)} frames < minimum {min_frames}"
        )
    if len(motion) >= max_frames:
        raise BadInputError(
            "too_long", motion_id, f"{path}: {len(motion)} frames >= maximum {max_frames}"
        )
    return motion.astype(np.float32, copy=False)


def _read_stats(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean.npy / Std.npy of the folder, validated, or None when both are absent."""
    paths = [folder / "Mean.npy", folder / "Std.npy"]
    present = [p.is_file() for p in paths]
    if not any(present):
        return None
    if not all(present):
        raise FileNotFoundError(f"{paths[present.index(False)]} is missing (its pair exists)")
    stats = []
    for path in paths:
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path}: truncated or corrupt .npy ({exc})") from None
        if array.shape != (FEATURE_DIM,) or not np.isfinite(array).all():
            raise ValueError(f"{path}: expected finite ({FEATURE_DIM},), got {array.shape}")
        stats.append(array.astype(np.float32))
    if (stats[1] <= 0).any():
        raise ValueError(f"{paths[1]}: std must be positive")
    return stats[0], stats[1]


# --------------------------------------------------------------------------- import


def _split_ids(folder: Path, splits, note) -> list[tuple[str, str]]:
    """(motion id, partition) pairs in split order; a repeated id is reported (duplicate_id)."""
    seen: dict[str, str] = {}
    pairs = []
    for split in splits:
        for motion_id in read_split(folder, split):
            if motion_id in seen:
                note(
                    BadInputError(
                        "duplicate_id",
                        motion_id,
                        f"{folder / (split + '.txt')}: {motion_id} already listed in "
                        f"{seen[motion_id]}.txt",
                    )
                )
                continue
            seen[motion_id] = split
            pairs.append((motion_id, split))
    return pairs


def _clip_motions(motion_id, motion, captions, min_frames, max_frames, fps, note):
    """Split one clip into (id, frames, start frame, end frame, captions) motions."""
    whole = [c for c in captions if c.whole_clip]
    motions = [(motion_id, motion, 0, len(motion), whole)] if whole else []
    if not whole:
        note(BadInputError("no_whole_clip_caption", motion_id,
                           f"texts/{motion_id}.txt: no caption covers the whole clip; only its "
                           "sub-ranges "
                           "are kept"))  # fmt: skip
    letters = iter(SUBRANGE_LETTERS)
    for caption in (c for c in captions if not c.whole_clip):
        first, last = int(caption.start * fps), int(caption.end * fps)
        frames = motion[first:last]
        if not min_frames <= len(frames) < max_frames:
            note(BadInputError(
                "subrange_dropped", f"{motion_id}:{caption.caption_index + 1}",
                f"texts/{motion_id}.txt, line {caption.caption_index + 1}: selects "
                f"{len(frames)} frames ({caption.start}s-{caption.end}s), outside "
                f"[{min_frames}, {max_frames})",
            ))  # fmt: skip
            continue
        letter = next(letters, None)
        if letter is None:
            raise ValueError(f"{motion_id}: more than {len(SUBRANGE_LETTERS)} sub-range captions")
        motions.append((f"{letter}_{motion_id}", frames, first, first + len(frames), [caption]))
    return motions


def import_humanml3d(
    folder: str | Path,
    out_dir: str | Path,
    dataset: str = "humanml3d",
    splits: tuple[str, ...] = SPLITS,
    on_error: str = "skip",
    min_frames: int = KEEP_MIN_FRAMES,
    max_frames: int = KEEP_MAX_FRAMES,
    fps: int = FPS,
) -> HumanML3DImport:
    """Read a HumanML3D-layout folder; write a MotionStore, captions and Mean/Std to `out_dir`.

    Writes `out_dir/motions.parquet` + `features.npy` (store columns: dataset, partition,
    source (file relative to `folder`), parent_id, frame_start, frame_end), `captions.parquet`,
    `Mean.npy` and `Std.npy` (copied from the folder, or computed over the kept motions when
    the folder has none). `on_error='skip'` skips bad inputs and reports them; 'fail' raises
    BadInputError on the first error (filters never raise). Missing split files and broken
    Mean/Std files always raise.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"HumanML3D folder {folder} does not exist")
    stats = _read_stats(folder)  # structural problems raise before the long read
    report: dict[str, list[str]] = {}
    messages: list[str] = []

    def note(problem: BadInputError) -> None:
        if on_error == "fail" and problem.reason in ERROR_REASONS:
            raise problem
        report.setdefault(problem.reason, []).append(problem.item)
        messages.append(f"[{problem.reason}] {problem}")

    rows, arrays, caption_rows = [], [], []
    for motion_id, partition in _split_ids(folder, splits, note):
        source = f"new_joint_vecs/{motion_id}.npy"
        try:
            motion = _read_motion(folder / source, motion_id, min_frames, max_frames)
            captions = _read_captions(folder / "texts" / f"{motion_id}.txt", motion_id)
        except BadInputError as problem:
            note(problem)
            continue
        for new_id, frames, first, last, kept in _clip_motions(
            motion_id, motion, captions, min_frames, max_frames, fps, note
        ):
            rows.append((new_id, dataset, partition, source, motion_id, first, last))
            arrays.append(frames)
            caption_rows += [(new_id, *c) for c in kept]

    columns = ["motion_id", "dataset", "partition", "source", "parent_id", "frame_start",
               "frame_end"]  # fmt: skip
    meta = pd.DataFrame(rows, columns=columns)
    table = write_store(
        out_dir, meta["motion_id"].tolist(), arrays,
        columns={c: meta[c].tolist() for c in columns[1:]},
    )  # fmt: skip
    captions_df = pd.DataFrame(caption_rows, columns=CAPTION_COLUMNS)
    write_parquet(out_dir / "captions.parquet", captions_df)

    stats_source = "folder" if stats is not None else "computed"
    if stats is None:
        if not arrays:
            raise ValueError(f"{folder}: no usable motion and no Mean.npy/Std.npy")
        whole = [a for a, row in zip(arrays, rows, strict=True) if row[0] == row[4]]
        stats = mean_std(whole or arrays)
    write_npy(out_dir / "Mean.npy", stats[0])
    write_npy(out_dir / "Std.npy", stats[1])
    return HumanML3DImport(table, captions_df, stats[0], stats[1], stats_source, report, messages)
