"""Motion-X import: SMPL-X 322-dim clips -> SMPL parameters -> 22 joints at 20 fps -> features.

Motion-X (IDEA-Research/Motion-X) stores every clip as
motion_data/smplx_322/<subset>/.../<clip>.npy, a (T, 322) float array at 30 fps (its README):
root_orient [0:3], pose_body [3:66], pose_hand [66:156], jaw [156:159], face_expr [159:209],
face_shape [209:309], trans [309:312], betas [312:322]. Captions are
texts/semantic_labels/<subset>/.../<clip>.txt, and split files (train/val/test.txt) list the clip
ids "<subset>/.../<clip>" (no extension).

Conventions (checked against Motion-X's own processing scripts, mocap-dataset-process/humanml.py,
grab.py, egobody.py): the released parameters are already y-up. Those scripts turn AMASS/GRAB's
z-up data to y-up (root orientation premultiplied by a -90 degree rotation about x, translation
mapped to (x, z, -y)) and rotate each clip so its first frame faces +z; the tomato pipeline that
consumes them (tomato_represenation/motion_representation.py) puts the floor at min y. Hence the
default `up_axis="y"` (no rotation). `up_axis="z"` applies HumanML3D's AMASS transform for z-up
inputs. The video-based subsets have no published conversion script; they are read as y-up too,
and some are known to be mis-oriented upstream (e.g. game_motion upside down, Motion-X issue #95).

SMPL-X to SMPL is an approximation: the first 22 joints share names and order, so SMPL-X
root/body poses drive SMPL joints 0..21 index for index and SMPL's hand joints (22, 23) stay zero;
joint locations and shape spaces differ between the models, so betas do not transfer exactly
(exact transfer is mesh fitting).

Over 450 lines because reading, SMPL conversion and the folder import share the Motion-X
conventions described here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hmu.data.rotations import (
    axis_angle_to_quaternion,
    qinv,
    qmul,
    quaternion_to_axis_angle,
)
from hmu.data.skeleton import NUM_JOINTS, forward_kinematics, scaled_rest_offsets
from hmu.data.store import write_store
from hmu.io import write_parquet

logger = logging.getLogger(__name__)

WIDTH = 322
SLICES = {
    "root_orient": slice(0, 3),
    "pose_body": slice(3, 66),
    "pose_hand": slice(66, 156),
    "pose_jaw": slice(156, 159),
    "face_expr": slice(159, 209),
    "face_shape": slice(209, 309),
    "trans": slice(309, 312),
    "betas": slice(312, 322),
}
SOURCE_FPS = 30.0  # Motion-X: "All motions have been unified in 30 fps" (README)
TARGET_FPS = 20.0  # HumanML3D
UP_AXES = ("y", "z")
DEFAULT_UP_AXIS = "y"  # released smplx_322 files are y-up (see module docstring)

# Plausibility limits used by `validate_smplx_322`: far beyond real data, they catch garbage.
MAX_ROTATION = 4 * math.pi  # largest axis-angle norm per joint (radians)
MAX_TRANSLATION = 1000.0  # metres from the origin
MAX_ABS_BETA = 10.0

# HMU convention for the built-in skeleton: body size grows by 4% per unit of betas[0], a crude
# stand-in for SMPL's first shape component (mostly height).
HEIGHT_SCALE_PER_BETA0 = 0.04

MIN_FEATURE_FRAMES = 40  # HumanML3D loaders keep motions with at least 40 feature frames
MOTION_DIR = Path("motion_data") / "smplx_322"
TEXT_DIR = Path("texts") / "semantic_labels"
SPLIT_NAMES = ("train", "val", "test")
HASH_FORMAT_SUBSETS = ("humanml",)  # subsets whose captions use HumanML3D's '#' format
CAPTION_COLUMNS = ["motion_id", "caption_index", "caption", "tokens", "start", "end"]

# Z-up (AMASS) -> y-up as HumanML3D does it: row vectors times this matrix, then x negated.
_Z_TO_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


class MotionXError(ValueError):
    """A bad Motion-X input; `reason` names the kind of problem (a key of the skip report)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading and validation


def validate_smplx_322(params: np.ndarray, name: str = "array") -> np.ndarray:
    """Check a (T, 322) SMPL-X array and return it as float32; raise MotionXError naming `name`.

    Checks the shape, finite values, and plausible ranges (axis-angle norms, translation, betas).
    """
    params = np.asarray(params)
    if params.ndim != 2 or params.shape[1] != WIDTH or params.shape[0] == 0:
        raise MotionXError("bad_shape", f"{name}: expected shape (T, {WIDTH}), got {params.shape}")
    if not np.issubdtype(params.dtype, np.number):
        raise MotionXError("bad_shape", f"{name}: expected numbers, got dtype {params.dtype}")
    params = params.astype(np.float32)
    finite = np.isfinite(params).all(axis=1)  # (T,)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise MotionXError(
            "non_finite",
            f"{name}: {len(bad)} of {len(params)} frames hold NaN/inf (first: frame {bad[0]})",
        )
    rotations = params[:, : SLICES["pose_jaw"].stop].reshape(len(params), -1, 3)  # (T, 53, 3)
    checks = (
        ("axis-angle norm", np.linalg.norm(rotations, axis=-1), MAX_ROTATION),
        ("translation", np.linalg.norm(params[:, SLICES["trans"]], axis=-1), MAX_TRANSLATION),
        ("|betas|", np.abs(params[:, SLICES["betas"]]), MAX_ABS_BETA),
    )
    for what, values, limit in checks:
        if values.max() > limit:
            frame = int(np.unravel_index(values.argmax(), values.shape)[0])
            raise MotionXError(
                "out_of_range",
                f"{name}: implausible {what} {values.max():.3g} > {limit:.3g} (frame {frame})",
            )
    return params


def read_smplx_322(path: str | Path) -> np.ndarray:
    """Load and validate one Motion-X clip file -> (T, 322) float32.

    Raises FileNotFoundError for a missing file and MotionXError (a ValueError) naming the file
    for an unreadable/truncated .npy, a wrong shape, NaN/inf frames or implausible values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motion file not found")
    try:
        params = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise MotionXError("unreadable", f"{path}: cannot read .npy ({err})") from err
    return validate_smplx_322(params, str(path))


# ---------------------------------------------------------------------------------------------
# SMPL-X -> SMPL and resampling


def smplx_to_smpl(params: np.ndarray) -> dict[str, np.ndarray]:
    """Map SMPL-X 322-dim frames to SMPL parameters (float64).

    Returns global_orient (T, 3), body_pose (T, 69) = the 21 SMPL-X body joints followed by SMPL's
    two hand joints (22, 23) set to zero, transl (T, 3) and betas (10,) = the mean over frames
    (Motion-X betas are constant per clip, so this is the clip's shape). The betas are SMPL-X
    shape coefficients: they only approximate an SMPL body of the same shape.
    """
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != WIDTH:
        raise ValueError(f"smplx_to_smpl: expected shape (T, {WIDTH}), got {params.shape}")
    frames = len(params)
    hands = np.zeros((frames, 6))
    return {
        "global_orient": params[:, SLICES["root_orient"]].copy(),
        "body_pose": np.concatenate([params[:, SLICES["pose_body"]], hands], axis=1),
        "transl": params[:, SLICES["trans"]].copy(),
        "betas": params[:, SLICES["betas"]].mean(axis=0),
    }


def _local_rotations(smpl: Mapping[str, np.ndarray]) -> np.ndarray:
    """The 22 local axis-angle rotations (T, 22, 3) of an SMPL parameter dict."""
    frames = len(smpl["global_orient"])
    body = np.asarray(smpl["body_pose"])[:, : 3 * (NUM_JOINTS - 1)].reshape(frames, -1, 3)
    return np.concatenate([np.asarray(smpl["global_orient"])[:, None], body], axis=1)


def resample_smpl(
    smpl: Mapping[str, np.ndarray], src_fps: float = SOURCE_FPS, dst_fps: float = TARGET_FPS
) -> dict[str, np.ndarray]:
    """Resample SMPL parameters to `dst_fps`, sampling times t = k / dst_fps within the clip.

    Joint rotations are interpolated by slerp (shortest arc) and the translation linearly, before
    forward kinematics: unlike interpolating joint positions, this keeps bone lengths exact and is
    exact for constant-velocity rotations. From 30 to 20 fps every other output frame is an input
    frame and the others are midpoints. The hand joints 22, 23 are copied as zeros.
    """
    frames = len(smpl["global_orient"])
    count = math.floor((frames - 1) * dst_fps / src_fps + 1e-9) + 1
    position = np.arange(count) * (src_fps / dst_fps)  # (T',) in source frames
    i0 = np.minimum(np.floor(position + 1e-9).astype(np.int64), frames - 1)
    i1 = np.minimum(i0 + 1, frames - 1)
    w = np.clip(position - i0, 0.0, 1.0)[:, None]  # (T', 1)

    quat = axis_angle_to_quaternion(_local_rotations(smpl).astype(np.float64))  # (T, 22, 4)
    q0, q1 = quat[i0], quat[i1]
    step = quaternion_to_axis_angle(qmul(qinv(q0), q1))  # (T', 22, 3) shortest arc q0 -> q1
    rot = quaternion_to_axis_angle(qmul(q0, axis_angle_to_quaternion(step * w[:, :, None])))
    transl = np.asarray(smpl["transl"], dtype=np.float64)
    rest = np.zeros((count, 69 - 3 * (NUM_JOINTS - 1)))
    return {
        "global_orient": rot[:, 0],
        "body_pose": np.concatenate([rot[:, 1:].reshape(count, -1), rest], axis=1),
        "transl": transl[i0] * (1 - w) + transl[i1] * w,
        "betas": np.asarray(smpl["betas"], dtype=np.float64),
    }


# ---------------------------------------------------------------------------------------------
# Forward kinematics


def height_scale(betas: np.ndarray) -> float:
    """HMU's body-size factor for the built-in skeleton: 1 + 0.04 * betas[0] (crude, see above)."""
    return 1.0 + HEIGHT_SCALE_PER_BETA0 * float(np.asarray(betas).reshape(-1)[0])


def _resolve_model_file(path: Path, gender: str) -> Path:
    """Find SMPL_<GENDER>.pkl/.npz in `path`, `path`/smpl, or return `path` if it is a file."""
    if path.is_file():
        return path
    names = [f"SMPL_{gender.upper()}.{ext}" for ext in ("pkl", "npz")]
    for folder in (path, path / "smpl"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"{path}: no SMPL model file {' or '.join(names)} here or in smpl/")


def load_body_model(path: str | Path, gender: str = "neutral", **kwargs) -> torch.nn.Module:
    """Load an SMPL body model with the `smplx` package (what smplx.create builds for 'smpl').

    `path` is a model file (.pkl as distributed, or .npz with the same keys) or a folder holding
    SMPL_<GENDER>.pkl (directly or in smpl/). Extra kwargs go to smplx.SMPL (e.g. vertex_ids for
    a model with few vertices, dtype). Official .pkl files may need the `chumpy` package to
    unpickle.
    """
    import smplx  # optional dependency, only for this path

    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"gender must be neutral, male or female, got {gender!r}")
    model_file = _resolve_model_file(Path(path), gender)
    if model_file.suffix == ".npz":
        with np.load(model_file, allow_pickle=False) as data:
            kwargs["data_struct"] = smplx.utils.Struct(**dict(data))
    flags = ("betas", "global_orient", "body_pose", "transl")
    kwargs.update({f"create_{name}": False for name in flags})
    return smplx.SMPL(str(model_file), gender=gender, **kwargs).eval()


def _smpl_model_joints(smpl: Mapping[str, np.ndarray], model, chunk: int = 256) -> np.ndarray:
    """Joints 0..21 from an smplx SMPL model, in chunks of frames to bound memory."""
    dtype = model.shapedirs.dtype
    frames = len(smpl["global_orient"])
    betas = np.zeros(model.num_betas)
    given = np.asarray(smpl["betas"])[: model.num_betas]
    betas[: len(given)] = given
    tensors = {
        k: torch.as_tensor(np.asarray(smpl[k]), dtype=dtype)
        for k in ("global_orient", "body_pose", "transl")
    }
    betas_t = torch.as_tensor(betas, dtype=dtype)[None]  # (1, B)
    parts = []
    with torch.no_grad():
        for start in range(0, frames, chunk):
            part = {k: v[start : start + chunk] for k, v in tensors.items()}
            out = model(betas=betas_t.expand(len(part["transl"]), -1), **part)
            parts.append(out.joints[:, :NUM_JOINTS].double().numpy())  # (t, 22, 3)
    return np.concatenate(parts)


def smpl_joints(smpl: Mapping[str, np.ndarray], body_model=None) -> np.ndarray:
    """Joint positions (T, 22, 3) float64 from SMPL parameters.

    With `body_model` (from `load_body_model`): the SMPL model's joints 0..21 (pelvis at
    transl + its rest pelvis J0(betas)). Without: HMU's built-in skeleton, rest offsets scaled by
    `height_scale(betas)`, pelvis at transl. The two differ by a constant offset when J0 != 0,
    which the feature canonicalisation (floor, root at the origin) removes.
    """
    if body_model is not None:
        return _smpl_model_joints(smpl, body_model)
    offsets = scaled_rest_offsets(height_scale(smpl["betas"]))
    rot = _local_rotations(smpl).astype(np.float64)
    return forward_kinematics(rot, np.asarray(smpl["transl"], dtype=np.float64), offsets)


def to_y_up(joints: np.ndarray, up_axis: str = DEFAULT_UP_AXIS) -> np.ndarray:
    """Rotate positions (..., 3) to HumanML3D's y-up frame.

    'y': unchanged. 'z': HumanML3D's AMASS transform, (x, y, z) -> (-x, z, y) (a rotation).
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")
    if up_axis == "y":
        return joints
    out = joints @ _Z_TO_Y
    out[..., 0] *= -1
    return out


def convert_clip(
    params: np.ndarray,
    fps: float = SOURCE_FPS,
    body_model=None,
    up_axis: str = DEFAULT_UP_AXIS,
) -> np.ndarray:
    """One Motion-X clip (T, 322) at `fps` -> joints (T', 22, 3) float32 at 20 fps, y-up.

    SMPL-X -> SMPL, slerp-resample to 20 fps, forward kinematics (smplx `body_model` or the
    built-in skeleton), then the up-axis rotation. Positions are not canonicalised (floor, facing);
    `hmu.data.humanml.joints_to_features` does that.
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")
    smpl = resample_smpl(smplx_to_smpl(params), fps, TARGET_FPS)
    return to_y_up(smpl_joints(smpl, body_model), up_axis).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Captions and split files


def read_captions(path: str | Path, hash_format: bool = False) -> list[dict]:
    """Read a Motion-X caption file -> [{caption, tokens, start, end}] (one per non-empty line).

    Lines in HumanML3D's format `caption#word/POS ...#start#end` (seconds, 0 = whole clip; NaN
    read as 0) keep their tokens; plain lines are captions without tokens (tokens "", start = end
    = 0). With `hash_format` (the humanml subset) every line must have the four '#' fields.
    Raises FileNotFoundError, or MotionXError naming the file for an empty file or a bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: caption file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise MotionXError("bad_captions", f"{path}: not UTF-8 text ({err})") from err
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split("#")
        if len(fields) == 1 and not hash_format:
            rows.append({"caption": line, "tokens": "", "start": 0.0, "end": 0.0})
            continue
        if len(fields) != 4 or not fields[0].strip():
            raise MotionXError(
                "bad_captions",
                f"{path}: line {number} is not 'caption#tokens#start#end': {line[:80]!r}",
            )
        try:
            start, end = (float(v) if v.strip() else 0.0 for v in fields[2:])
        except ValueError as err:
            raise MotionXError("bad_captions", f"{path}: line {number}: bad time ({err})") from err
        start, end = (0.0 if math.isnan(v) else v for v in (start, end))
        rows.append({"caption": fields[0].strip(), "tokens": fields[1].strip(),
                     "start": start, "end": end})  # fmt: skip
    if not rows:
        raise MotionXError("empty_captions", f"{path}: caption file is empty")
    return rows


def _layout_root(root: Path) -> Path:
    """The folder holding motion_data/ (the Motion-X `datasets` folder or its parent)."""
    for candidate in (root, root / "datasets"):
        if (candidate / MOTION_DIR).is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: no {MOTION_DIR} folder (expected the Motion-X layout)")


def read_splits(root: str | Path) -> dict[str, str]:
    """Read Motion-X split files -> {motion id: partition}.

    Looks for train.txt, val.txt and test.txt in `root`, root/datasets or root/splits; each line
    is an id "<subset>/.../<clip>" (no extension, as in the Motion-X repository's
    datasets/*.txt). Raises FileNotFoundError if none exist, ValueError for an id in two splits.
    """
    root = Path(root)
    folders = [root, root / "datasets", root / "splits"]
    folder = next((f for f in folders if any((f / f"{s}.txt").is_file() for s in SPLIT_NAMES)),
                  None)  # fmt: skip
    if folder is None:
        raise FileNotFoundError(f"{root}: no split files ({', '.join(SPLIT_NAMES)}.txt)")
    splits: dict[str, str] = {}
    for partition in SPLIT_NAMES:
        path = folder / f"{partition}.txt"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            motion_id = line.strip().removesuffix(".npy")
            if not motion_id:
                continue
            if splits.setdefault(motion_id, partition) != partition:
                raise ValueError(f"{path}: id {motion_id!r} is also in {splits[motion_id]}.txt")
    return splits


# ---------------------------------------------------------------------------------------------
# Folder conversion


def _missing(reason: str, path: Path, what: str) -> FileNotFoundError:
    """A FileNotFoundError naming the file, tagged with a skip-report reason."""
    err = FileNotFoundError(f"{path}: {what} not found")
    err.reason = reason
    return err


def _convert_one(root, motion_id, body_model, up_axis, fps, min_frames):
    """Captions + joints + features of one clip; raises MotionXError/FileNotFoundError."""
    from hmu.data.humanml import joints_to_features  # written by another module; import lazily

    motion_path = root / MOTION_DIR / f"{motion_id}.npy"
    text_path = root / TEXT_DIR / f"{motion_id}.txt"
    if not motion_path.is_file():
        raise _missing("missing_motion", motion_path, "motion file")
    if not text_path.is_file():
        raise _missing("missing_captions", text_path, "caption file")
    subset = motion_id.split("/", 1)[0]
    captions = read_captions(text_path, hash_format=subset in HASH_FORMAT_SUBSETS)
    params = read_smplx_322(motion_path)
    frames_20 = math.floor((len(params) - 1) * TARGET_FPS / fps + 1e-9) + 1
    if frames_20 - 1 < min_frames:
        raise MotionXError(
            "too_short",
            f"{motion_path}: {len(params)} frames at {fps:g} fps give {frames_20 - 1} feature "
            f"frames at 20 fps, fewer than {min_frames}",
        )
    joints = convert_clip(params, fps=fps, body_model=body_model, up_axis=up_axis)
    features = np.asarray(joints_to_features(joints), dtype=np.float32)  # (T'-1, 263)
    return captions, joints, features, motion_path.relative_to(root).as_posix()


def convert_folder(
    root: str | Path,
    ids: Sequence[str] | Mapping[str, str] | None,
    out_dir: str | Path,
    on_error: str = "skip",
    body_model_path: str | Path | None = None,
    gender: str = "neutral",
    up_axis: str = DEFAULT_UP_AXIS,
    progress: bool = True,
    dataset: str = "motionx",
    fps: float = SOURCE_FPS,
    min_frames: int = MIN_FEATURE_FRAMES,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Convert Motion-X clips under `root` into HMU stores in `out_dir`.

    `ids`: clip ids "<subset>/.../<clip>", as a {id: partition} mapping, a sequence (partitions
    from the split files when present, else "all"), or None (every id of the split files).
    Writes
    - out_dir/motions.parquet + features.npy: 263-dim features at 20 fps; columns dataset,
      partition, subset, source (the .npy path relative to the Motion-X folder);
    - out_dir/joints/motions.parquet + joints.npy: the same motions' 20 fps joints (T', 22, 3),
      one frame more than their T'-1 feature frames, y-up, not canonicalised;
    - out_dir/captions.parquet: motion_id, caption_index, caption, tokens, start, end.
    Bad clips (missing file, truncated .npy, NaN frames, wrong width, out-of-range values, fewer
    than `min_frames` feature frames, missing/empty/bad caption file) are skipped and counted
    (`on_error="skip"`, a warning names the file) or raise (`"fail"`).
    Returns (motions table, report {reason: [ids]}).
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")
    root = _layout_root(Path(root))
    if ids is None:
        partitions = read_splits(root)
    elif isinstance(ids, Mapping):
        partitions = dict(ids)
    else:
        try:
            known = read_splits(root)
        except FileNotFoundError:
            known = {}
        partitions = {i: known.get(i, "all") for i in ids}
    body_model = None if body_model_path is None else load_body_model(body_model_path, gender)

    kept, features, joints, captions, sources = [], [], [], [], []
    report: dict[str, list[str]] = {}
    for motion_id in tqdm(partitions, desc="motionx", disable=not progress):
        try:
            rows, clip_joints, clip_features, source = _convert_one(
                root, motion_id, body_model, up_axis, fps, min_frames
            )
        except (MotionXError, FileNotFoundError) as err:
            if on_error == "fail":
                raise
            report.setdefault(getattr(err, "reason", "missing_motion"), []).append(motion_id)
            logger.warning("skipping %s: %s", motion_id, err)
            continue
        kept.append(motion_id)
        features.append(clip_features)
        joints.append(clip_joints)
        sources.append(source)
        captions += [{"motion_id": motion_id, "caption_index": k, **row}
                     for k, row in enumerate(rows)]  # fmt: skip

    columns = {
        "dataset": [dataset] * len(kept),
        "partition": [partitions[i] for i in kept],
        "subset": [i.split("/", 1)[0] for i in kept],
        "source": sources,
    }
    out_dir = Path(out_dir)
    table = write_store(out_dir, kept, features, columns)
    write_store(out_dir / "joints", kept, joints, columns, array_name="joints.npy")
    write_parquet(out_dir / "captions.parquet", pd.DataFrame(captions, columns=CAPTION_COLUMNS))
    skipped = sum(len(v) for v in report.values())
    logger.info("motionx: converted %d clips, skipped %d %s", len(kept), skipped,
                {k: len(v) for k, v in report.items()})  # fmt: skip
    return table, report
