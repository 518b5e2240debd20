"""Generate a whole synthetic dataset and write it in the HumanML3D or the Motion-X layout.

Per base motion i, a numpy Generator seeded from (seed, i) draws the actions, timing, body and
captions, so the dataset is the same for any number of worker processes. The dataset is written
into a temporary sibling folder and renamed into place at the end (never half a dataset).

HumanML3D layout (EricGuo5513/HumanML3D README): new_joints/<id>.npy (T-1, 22, 3) =
recover_from_ric of the features (canonical: floor y = 0, start at the origin facing +z),
new_joint_vecs/<id>.npy (T-1, 263), texts/<id>.txt lines `caption##0.0#0.0` (tokens left empty
for the text stage), train/val/test/all.txt, Mean.npy / Std.npy. Ids 000000..., mirrors M000000...
Motion-X layout (IDEA-Research/Motion-X README): motion_data/smplx_322/<subset>/<clip>.npy
(T, 322) at 30 fps, texts/semantic_labels/<subset>/<clip>.txt, split files with ids
"<subset>/<clip>".
Both: _groundtruth/metadata.parquet (labels per motion and segment); Motion-X (and HumanML3D
if asked) also _groundtruth/motions.parquet + joints.npy, the 20 fps y-up joints of every clip.

Over 450 lines because drawing, building and writing a motion share its seeded Generator, whose
draw order fixes the bytes written.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from hmu.data.skeleton import MIRROR_PERMUTATION, mirror_joints
from hmu.data.synth.actions import PRIMITIVES
from hmu.data.synth.captions import explicit_templates, mirror_caption, motion_captions
from hmu.data.synth.motion import Motion, plan_motion, render_plan
from hmu.io import write_npy, write_parquet, write_text

LAYOUTS = ("humanml3d", "motionx")
# Default toxic mixes (action -> weight): HumanML3D's toxic captions are mostly kicks and
# punches; Motion-X adds weapons and martial arts.
DEFAULT_TOXIC_MIX = {
    "humanml3d": {"front_kick": 3.0, "roundhouse_kick": 1.5, "jab": 2.5, "hook": 1.5,
                  "uppercut": 1.0, "beat_down": 1.0, "martial_combo": 0.7},
    "motionx": {"front_kick": 2.0, "roundhouse_kick": 2.0, "jab": 1.5, "hook": 1.0,
                "uppercut": 1.0, "beat_down": 1.0, "martial_combo": 2.5, "stab": 1.5,
                "sword_slash": 2.0, "shoot_gun": 2.0},
}  # fmt: skip
MOTIONX_SUBSETS = ("humanml", "kungfu", "idea400", "game_motion", "perform", "fitness")
# z-up (AMASS-like) from HumanML3D's y-up: the inverse (= itself) of (x, y, z) -> (-x, z, y)
Y_TO_Z = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
HEIGHT_SCALE_PER_BETA0 = 0.04  # HMU convention: height_scale = 1 + 0.04 * betas[0]


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of one synthetic dataset (the params.yaml section synth.<dataset>)."""

    layout: str = "humanml3d"
    motions: int = 1600  # base motions; mirrors come on top
    seed: int = 0
    mirror: bool = True
    toxic_share: float = 0.08  # of base motions (= of all motions, mirrors included)
    implicit_share: float = 0.3  # toxic motions that also get implicit captions
    two_toxic_share: float = 0.2  # toxic motions of 2-3 actions with two toxic actions
    actions_per_motion: tuple = (0.5, 0.35, 0.15)  # probabilities of 1, 2, 3 actions
    test_forget: int = 112  # test ids (mirrors included) in the forget set
    test_retain: int = 112
    val_share: float = 0.05
    toxic_mix: dict = field(default_factory=dict)  # action -> weight ({} = DEFAULT_TOXIC_MIX)
    safe_mix: dict = field(default_factory=dict)  # action -> weight ({} = the table's weights)
    keywords: str = ""  # official keyword list: humanml3d or motionx ("" = the layout's)
    up_axis: str = "z"  # Motion-X world frame: z (AMASS-like) or y
    subsets: tuple = MOTIONX_SUBSETS
    random_facing: bool = True
    groundtruth_joints: bool = False
    workers: int = 1

    @classmethod
    def from_params(cls, params: dict) -> SynthConfig:
        """Build from a params.yaml section; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown synth parameter(s) {unknown}; known: {sorted(known)}")
        values = dict(params)
        for name in ("actions_per_motion", "subsets"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values).validated()

    def validated(self) -> SynthConfig:
        """Check ranges and names; return self."""
        if self.layout not in LAYOUTS:
            raise ValueError(f"synth layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.motions < 1:
            raise ValueError(f"synth motions must be >= 1, got {self.motions}")
        for name in ("toxic_share", "implicit_share", "two_toxic_share", "val_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"synth {name} must be in [0, 1], got {getattr(self, name)}")
        probs = np.asarray(self.actions_per_motion, float)
        if len(probs) != 3 or (probs < 0).any() or not math.isclose(probs.sum(), 1.0):
            raise ValueError(f"actions_per_motion must be 3 probabilities summing to 1: {probs}")
        if self.up_axis not in ("y", "z"):
            raise ValueError(f"up_axis must be 'y' or 'z', got {self.up_axis!r}")
        bad = sorted(set(self.subsets) - set(MOTIONX_SUBSETS))
        if bad or not self.subsets:
            raise ValueError(f"subsets must be a non-empty subset of {MOTIONX_SUBSETS}: {bad}")
        for mix, toxic in ((self.toxic_mix, True), (self.safe_mix, False)):
            for name, weight in mix.items():
                if name not in PRIMITIVES or PRIMITIVES[name].toxic != toxic or weight < 0:
                    kind = "toxic" if toxic else "safe"
                    raise ValueError(f"{kind} mix: {name!r} is not a {kind} action (or weight<0)")
        for name in self.toxic_weights():
            if not explicit_templates(name, tuple(self.keyword_list())):
                raise ValueError(
                    f"toxic action {name!r} has no caption with a keyword of the "
                    f"{self.keyword_source()} list; drop it from toxic_mix"
                )
        return self

    def keyword_source(self) -> str:
        return self.keywords or self.layout

    def keyword_list(self) -> list[str]:
        from hmu.data.toxicity import official_keywords

        return official_keywords(self.keyword_source(), "violence")

    def toxic_weights(self) -> dict[str, float]:
        """Toxic action -> weight (toxic_mix, or the layout's DEFAULT_TOXIC_MIX)."""
        mix = self.toxic_mix or DEFAULT_TOXIC_MIX[self.layout]
        return {k: float(v) for k, v in mix.items() if v > 0}

    def safe_weights(self) -> dict[str, float]:
        if self.safe_mix:
            return {k: float(v) for k, v in self.safe_mix.items() if v > 0}
        return {n: p.weight for n, p in PRIMITIVES.items() if not p.toxic}


# ----------------------------------------------------------------------------- planning


def _choose(rng: np.random.Generator, weights: dict[str, float], avoid: str | None = None):
    names = [n for n in weights if n != avoid] or list(weights)
    p = np.array([weights[n] for n in names])
    return names[rng.choice(len(names), p=p / p.sum())]


def sample_actions(rng: np.random.Generator, toxic: bool, config: SynthConfig
                   ) -> list[tuple[str, str]]:  # fmt: skip
    """(action, side) of each segment of one motion: 1-3 actions, toxic ones where asked."""
    count = int(rng.choice(3, p=config.actions_per_motion)) + 1
    n_toxic = 0
    if toxic:
        n_toxic = 2 if count > 1 and rng.random() < config.two_toxic_share else 1
    toxic_at = set(rng.choice(count, n_toxic, replace=False).tolist())
    actions, previous = [], None
    for k in range(count):
        weights = config.toxic_weights() if k in toxic_at else config.safe_weights()
        previous = _choose(rng, weights, previous)
        actions.append((previous, "right" if rng.random() < 0.5 else "left"))
    return actions


def assign_partitions(config: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Toxic flag (N,) bool and partition (N,) str of the base motions, test set stratified."""
    rng = np.random.default_rng([config.seed, 0])
    n = config.motions
    copies = 2 if config.mirror else 1
    n_toxic = round(config.toxic_share * n)
    toxic = np.zeros(n, bool)
    toxic[rng.choice(n, n_toxic, replace=False)] = True
    partition = np.full(n, "train", dtype=object)
    for flag, wanted, name in ((True, config.test_forget, "test_forget"),
                               (False, config.test_retain, "test_retain")):  # fmt: skip
        if wanted % copies:
            raise ValueError(f"synth {name}={wanted} must be even when mirrors are written")
        pool = np.flatnonzero(toxic == flag)
        if wanted // copies >= len(pool) and wanted:
            raise ValueError(
                f"synth {name}={wanted} needs more than the {len(pool) * copies} "
                f"{'toxic' if flag else 'safe'} motions; raise motions/toxic_share"
            )
        test = rng.choice(pool, wanted // copies, replace=False)
        partition[test] = "test"
        rest = np.setdiff1d(pool, test)
        partition[rng.choice(rest, round(config.val_share * len(rest)), replace=False)] = "val"
    return toxic, partition


def _motionx_subset(rng, actions, config: SynthConfig) -> str:
    main = next((a for a, _ in actions if PRIMITIVES[a].toxic), actions[0][0])
    weights = {s: w for s, w in PRIMITIVES[main].subsets.items() if s in config.subsets}
    if not weights:
        return "humanml" if "humanml" in config.subsets else config.subsets[0]
    return _choose(rng, weights)


# ----------------------------------------------------------------------------- one motion


def _smplx_322(motion: Motion, up_axis: str) -> np.ndarray:
    """Motion-X frames (T, 322) float32 from a motion: root/body axis-angle, trans, betas."""
    from hmu.data.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    frames = len(motion.root)
    out = np.zeros((frames, 322), np.float32)
    root_orient, trans = motion.rotations[:, 0], motion.root
    if up_axis == "z":
        root_orient = matrix_to_axis_angle(Y_TO_Z @ axis_angle_to_matrix(root_orient))
        trans = trans @ Y_TO_Z.T
    out[:, 0:3] = root_orient
    out[:, 3:66] = motion.rotations[:, 1:22].reshape(frames, 63)
    out[:, 309:312] = trans
    out[:, 312] = (motion.plan.height_scale - 1) / HEIGHT_SCALE_PER_BETA0
    return out


def mirror_rotations(rotations: np.ndarray) -> np.ndarray:
    """Mirror local axis-angle rotations (..., 22, 3) across x = 0: swap sides, negate y and z."""
    out = rotations[..., MIRROR_PERMUTATION, :].copy()
    out[..., 1:] *= -1
    return out


def _mirror_motion(motion: Motion) -> Motion:
    root = motion.root * [-1, 1, 1]
    return Motion(mirror_joints(motion.joints), mirror_rotations(motion.rotations), root,
                  motion.fps, motion.plan)  # fmt: skip


def motion_labels(index: int, toxic: bool, config: SynthConfig) -> dict:
    """The random choices of base motion `index` that need no rendering: actions (with sides),
    Motion-X subset, timing plan, the three captions and the indices of the implicit ones."""
    rng = np.random.default_rng([config.seed, 1, index])
    facing = None if config.random_facing else 0.0
    plan = plan_motion(sample_actions(rng, toxic, config), rng, facing=facing,
                       odd_frames=config.layout == "motionx")  # fmt: skip
    actions = [(s.action, s.side) for s in plan.segments]  # what survived the length limit
    subset = _motionx_subset(rng, actions, config) if config.layout == "motionx" else ""
    text_rng = np.random.default_rng([config.seed, 2, index])
    implicit = 0
    if toxic and text_rng.random() < config.implicit_share:
        implicit = int(text_rng.integers(1, 3))
    captions, implicit_at = motion_captions(actions, text_rng, config.keyword_list(),
                                            implicit=implicit)  # fmt: skip
    return {"index": index, "actions": actions, "subset": subset, "plan": plan,
            "captions": captions, "implicit": implicit_at}  # fmt: skip


def build_motion(index: int, toxic: bool, config: SynthConfig) -> dict:
    """Everything about base motion `index`: ids, arrays, captions and labels (mirror included)."""
    labels = motion_labels(index, toxic, config)
    subset, plan, captions = labels["subset"], labels["plan"], labels["captions"]
    motion20 = render_plan(plan, 20)
    base = f"{index:06d}"
    motion_id = f"{subset}/{base}" if subset else base
    record = {**labels, "items": [(motion_id, False, motion20, captions)]}
    motion30 = render_plan(plan, 30) if config.layout == "motionx" else None
    record["smplx"] = [] if motion30 is None else [_smplx_322(motion30, config.up_axis)]
    if config.mirror:
        mirror_id = f"{subset}/M{base}" if subset else f"M{base}"
        record["items"].append((mirror_id, True, _mirror_motion(motion20),
                                [mirror_caption(c) for c in captions]))  # fmt: skip
        if motion30 is not None:
            record["smplx"].append(_smplx_322(_mirror_motion(motion30), config.up_axis))
    if config.layout == "humanml3d":
        from hmu.data.humanml import process_joints, recover_from_ric  # imported lazily

        joints = np.stack([item[2].joints for item in record["items"]])
        features = process_joints(joints)[0]  # (copies, T-1, 263)
        record["features"] = list(features)
        # upstream's new_joints are recover_from_ric(new_joint_vecs), quirks included
        record["canonical"] = list(recover_from_ric(features))
    return record


def _metadata_rows(record: dict, toxic: bool, partition: str, keywords: list[str]) -> list:
    from hmu.data.toxicity import match_keywords

    rows = []
    for k, (motion_id, mirrored, motion, captions) in enumerate(record["items"]):
        file_frames = len(record["smplx"][k]) if record["smplx"] else len(motion.joints) - 1
        segments = motion.segments
        for seg in segments:
            side = seg["side"] if not mirrored else {"right": "left", "left": "right"}[seg["side"]]
            seg["side"] = side if PRIMITIVES[seg["action"]].sided else "none"
        matched = sorted({k for c in captions for k in match_keywords(c, keywords)})
        rows.append({
            "motion_id": motion_id,
            "base_id": record["items"][0][0],
            "mirrored": mirrored,
            "subset": record["subset"],
            "partition": partition,
            "toxic": toxic,
            "actions": [s["action"] for s in segments],
            "toxic_actions": [s["action"] for s in segments if s["toxic"]],
            "segments": json.dumps(segments, sort_keys=True),
            "frames": len(motion.joints),  # 20 fps frames of the generated motion
            "file_frames": file_frames,  # frames in the dataset file (T-1 features, 30 fps)
            "duration_s": round(record["plan"].duration, 4),
            "height_scale": record["plan"].height_scale,
            "facing_deg": math.degrees(record["plan"].facing) * (-1 if mirrored else 1),
            "captions": list(captions),
            "implicit_captions": list(record["implicit"]),
            "keywords": matched,
        })  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- writing


def _write_record(root: Path, record: dict, config: SynthConfig) -> None:
    if config.layout == "humanml3d":
        for (motion_id, _, _, captions), feats, joints in zip(
            record["items"], record["features"], record["canonical"], strict=True
        ):
            write_npy(root / "new_joint_vecs" / f"{motion_id}.npy", feats.astype(np.float32))
            write_npy(root / "new_joints" / f"{motion_id}.npy", joints.astype(np.float32))
            write_text(root / "texts" / f"{motion_id}.txt",
                       "".join(f"{c}##0.0#0.0\n" for c in captions))  # fmt: skip
        return
    for (motion_id, _, _, captions), params in zip(record["items"], record["smplx"], strict=True):
        write_npy(root / "motion_data" / "smplx_322" / f"{motion_id}.npy", params)
        hash_format = record["subset"] == "humanml"
        lines = [f"{c}##0.0#0.0" if hash_format else c for c in captions]
        write_text(root / "texts" / "semantic_labels" / f"{motion_id}.txt",
                   "".join(f"{line}\n" for line in lines))  # fmt: skip


def _build_star(args) -> dict:
    return build_motion(*args)


def _records(config: SynthConfig, toxic: np.ndarray):
    """Yield the records of all base motions in order (in worker processes if asked)."""
    jobs = [(i, bool(toxic[i]), config) for i in range(config.motions)]
    if config.workers <= 1:
        yield from map(_build_star, jobs)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, initializer=_worker_init) as pool:
        yield from pool.imap(_build_star, jobs, chunksize=16)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _summary(meta: pd.DataFrame, config: SynthConfig, keywords: list[str]) -> dict:
    def share(frame):
        return round(float(frame["toxic"].mean()), 4) if len(frame) else 0.0

    n_captions = int(meta["captions"].map(len).sum())
    n_implicit = int(meta["implicit_captions"].map(len).sum())
    parts = {p: {"motions": int((meta.partition == p).sum()),
                 "forget": int((meta.toxic & (meta.partition == p)).sum()),
                 "retain": int((~meta.toxic & (meta.partition == p)).sum()),
                 "toxic_share": share(meta[meta.partition == p])}
             for p in ("train", "val", "test")}  # fmt: skip
    base = meta[~meta.mirrored]
    segs = Counter(a for actions in base["actions"] for a in actions)
    return {
        "layout": config.layout,
        "seed": config.seed,
        "base_motions": int(len(base)),
        "motions": int(len(meta)),
        "captions": n_captions,
        "toxic_share": share(meta),
        "partitions": parts,
        "keyword_share": {k: round(float(meta["keywords"].map(lambda m, k=k: k in m).mean()), 4)
                          for k in keywords},  # fmt: skip
        "implicit_caption_share": round(n_implicit / max(n_captions, 1), 4),
        "toxic_motions_with_implicit": round(
            float((meta[meta.toxic]["implicit_captions"].map(len) > 0).mean()), 4
        ) if meta.toxic.any() else 0.0,
        "mean_frames_20fps": round(float(meta["frames"].mean()), 2),
        "actions_per_motion": round(float(base["actions"].map(len).mean()), 3),
        "action_segments": dict(sorted(segs.items())),
        "subsets": dict(sorted(Counter(base["subset"]).items())) if config.layout == "motionx"
        else {},
    }  # fmt: skip


def generate_dataset(out_dir: str | Path, config: SynthConfig) -> dict:
    """Generate the dataset `config` describes into `out_dir` (replaced); return a summary.

    The summary holds counts (motions, captions), the toxic share overall and per partition,
    the share of motions per toxic keyword, the implicit-caption share, mean length and the
    generation time in seconds.
    """
    import torch

    config = config.validated()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-motion tensors: extra threads only contend
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        meta = _generate_into(tmp, config)
        summary = _summary(meta, config, config.keyword_list())
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _generate_into(root: Path, config: SynthConfig) -> pd.DataFrame:
    toxic, partition = assign_partitions(config)
    keywords = config.keyword_list()
    rows, joints, ids = [], [], []
    for record in _records(config, toxic):
        i = record["index"]
        _write_record(root, record, config)
        rows += _metadata_rows(record, bool(toxic[i]), str(partition[i]), keywords)
        if config.groundtruth_joints:
            for motion_id, _, motion, _ in record["items"]:
                ids.append(motion_id)
                joints.append(motion.joints.astype(np.float32))
    meta = pd.DataFrame(rows)
    for name in ("train", "val", "test"):
        chosen = sorted(meta.motion_id[meta.partition == name])
        write_text(root / f"{name}.txt", "".join(f"{m}\n" for m in chosen))
    write_text(root / "all.txt", "".join(f"{m}\n" for m in sorted(meta.motion_id)))
    write_parquet(root / "_groundtruth" / "metadata.parquet", meta)
    if config.groundtruth_joints:
        from hmu.data.store import write_store

        write_store(root / "_groundtruth", ids, joints,
                    {"subset": meta["subset"].tolist(), "partition": meta["partition"].tolist()},
                    array_name="joints.npy")  # fmt: skip
    if config.layout == "humanml3d":
        from hmu.data.humanml import mean_std

        files = (np.load(root / "new_joint_vecs" / f"{m}.npy") for m in meta.motion_id)
        mean, std = mean_std(files)
        write_npy(root / "Mean.npy", mean)
        write_npy(root / "Std.npy", std)
    settings = {k: v for k, v in asdict(config).items() if k != "workers"}  # same files anyway
    write_text(root / "_groundtruth" / "config.json",
               json.dumps(settings, indent=2, sort_keys=True) + "\n")  # fmt: skip
    return meta
