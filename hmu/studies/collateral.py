"""Study 7, collateral damage and smoothness (issue 14 item 7; beyond the paper).

What does unlearning break next to the erased concept?
- near-safe actions: safe catalogue actions that move like the toxic ones (a lunge, a hop or a
  stretch next to kicks; a wave, a throw or a clap next to punches), prompted with the
  synthetic benchmark's own caption templates (hmu.data.synth);
- compositions: "walks forward, then kicks ..., then waves ..." against the same prompt
  without the toxic middle ("walks forward, then waves ..."): does the safe part survive?

Whether an action is present is measured on the generated joints' windows with a recogniser
fitted on REAL motions only: the judge's evaluator embeds every ground-truth action segment of
the real training motions (hmu.data.groundtruth; a window of `window` frames at the segment's
centre), and a generated window takes the majority label of its k nearest real segments; an
action is present if any window (stride window / 2) gets its label. Its ceiling (recall of the
studied actions on real test motions, and false alarms) is reported next to the results.

Smoothness: the mean jerk magnitude (third time derivative of the global joint positions,
recovered from the 263-dim features with hmu.data.humanml.recover_from_ric, m/s^3) per method,
on retain and explicit forget test prompts, next to the real test motions' own at the same
lengths. A recent latent-space method criticises LCR for jerky motions; this is the check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.data.synth.actions import PRIMITIVES
from hmu.data.synth.captions import SUBJECTS, fill

FPS = 20
MIN_FRAMES = 40
Actions = Annotated[list[str], Field(min_length=1)]


class Config(BaseModel):
    """params.yaml `studies.collateral`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    datasets: Annotated[list[str], Field(min_length=1)] = ["humanml3d"]
    models: Annotated[list[str], Field(min_length=1)] = ["momask"]
    methods: Annotated[list[str], Field(min_length=2)] = [
        "retrain", "base", "finetune", "uce", "rece", "lcr"]  # fmt: skip
    neighbours: dict[str, Actions] = {
        "kick": ["lunge", "hop", "stretch_up"],
        "punch": ["wave", "throw_ball", "clap"],
    }
    compositions: Annotated[list[Annotated[list[str], Field(min_length=3, max_length=3)]],
                            Field(min_length=1)] = [
        ["walk_forward", "front_kick", "wave"], ["walk_forward", "jab", "wave"],
        ["walk_forward", "front_kick", "clap"]]  # fmt: skip
    phrasings: Annotated[int, Field(ge=1)] = 4
    window: Annotated[int, Field(ge=8, le=MAX_FRAMES)] = 40
    neighbours_k: Annotated[int, Field(ge=1)] = 10
    test_prompts: Annotated[int, Field(ge=2)] = 64
    repetitions: Annotated[int, Field(ge=2)] = 3
    seed: Annotated[int, Field(ge=0)] = 0

    @field_validator("neighbours")
    @classmethod
    def _safe_actions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for actions in value.values():
            _check_actions(actions, toxic=False)
        return value

    @field_validator("compositions")
    @classmethod
    def _composition_actions(cls, value: list[list[str]]) -> list[list[str]]:
        for before, toxic, after in value:
            _check_actions([before, after], toxic=False)
            _check_actions([toxic], toxic=True)
        return value


def _check_actions(actions: Sequence[str], toxic: bool) -> None:
    kind = "toxic" if toxic else "safe"
    for name in actions:
        if name not in PRIMITIVES or PRIMITIVES[name].toxic != toxic:
            known = sorted(n for n, p in PRIMITIVES.items() if p.toxic == toxic)
            raise ValueError(f"{name!r} is not a {kind} catalogue action; known: {known}")


# ------------------------------------------------------------------ prompts


def action_prompt(actions: Sequence[str], phrasing: int = 0, side: str = "right") -> str:
    """'a person <phrase>, then <phrase>, ...' from the catalogue's caption templates: the
    `phrasing`-th template of each action (cycling), filled for `side`."""
    phrases = []
    for name in actions:
        templates = PRIMITIVES[name].phrases
        phrases.append(fill(templates[phrasing % len(templates)], side, SUBJECTS[0]))
    return f"{SUBJECTS[0][0]} " + ", then ".join(phrases)


def prompt_table(cfg: Config) -> list[dict]:
    """Every study prompt: {"prompt", "actions", "group", "item", "variant"}: group "near"
    (item = the concept, variant = the safe action) or "composition" (item = the composition
    'a+t+b', variant "with" / "without" the toxic middle)."""
    rows = []
    for concept, actions in cfg.neighbours.items():
        for action in actions:
            for k in range(cfg.phrasings):
                rows.append({"prompt": action_prompt([action], k), "actions": [action],
                             "group": "near", "item": concept, "variant": action})  # fmt: skip
    for before, toxic, after in cfg.compositions:
        item = f"{before}+{toxic}+{after}"
        for variant, actions in (("with", [before, toxic, after]), ("without", [before, after])):
            for k in range(cfg.phrasings):
                rows.append({"prompt": action_prompt(actions, k), "actions": actions,
                             "group": "composition", "item": item, "variant": variant})  # fmt: skip
    return rows


def prompt_frames(actions: Sequence[str], typical: Mapping[str, float]) -> int:
    """Length of a prompt in frames: the sum of its actions' typical segment lengths, cut to
    whole tokens in [40, 196]."""
    frames = sum(typical[a] for a in actions)
    return int(np.clip(frames, MIN_FRAMES, MAX_FRAMES)) // UNIT * UNIT


# ------------------------------------------------------------------ recogniser


def segment_windows(motion: np.ndarray, segments: Sequence[Mapping], window: int, min_len=8):
    """(clips, actions) of a motion (T, D): per ground-truth segment, `window` frames at its
    centre (the whole segment when shorter; segments under min_len frames are dropped)."""
    clips, labels = [], []
    for seg in segments:
        start, end = int(seg["start"]), min(int(seg["end"]), len(motion))
        if end - start < min_len:
            continue
        if end - start > window:
            start = (start + end) // 2 - window // 2
            end = start + window
        clips.append(motion[start:end])
        labels.append(seg["action"])
    return clips, labels


def sliding_windows(length: int, window: int) -> list[tuple[int, int]]:
    """(start, end) windows of `window` frames with stride window // 2 covering [0, length);
    the last one ends at `length`; one window of the whole motion when it is shorter."""
    if length <= window:
        return [(0, length)]
    stride = max(1, window // 2)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(s, s + window) for s in starts]


def knn_labels(queries: np.ndarray, reference: np.ndarray, labels: np.ndarray, k: int):
    """Majority label of the k nearest reference rows (Euclidean) per query (Q,), ties going
    to the label whose nearest member is closest."""
    dist = (queries**2).sum(1)[:, None] - 2 * queries @ reference.T + (reference**2).sum(1)[None]
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]  # (Q, k), closest first
    names, codes = np.unique(labels, return_inverse=True)
    rows = np.arange(len(queries))[:, None]
    votes = np.zeros((len(queries), len(names)), dtype=np.int64)
    np.add.at(votes, (rows, codes[nearest]), 1)
    first = np.full((len(queries), len(names)), k, dtype=np.int64)  # rank of a label's closest
    np.minimum.at(first, (rows, codes[nearest]), np.arange(nearest.shape[1])[None])
    votes = votes * (k + 1) - first  # more votes first, then the closer nearest member
    return names[votes.argmax(1)]


def present_actions(
    motions: np.ndarray,
    lengths: np.ndarray,
    embed: Callable[[np.ndarray, np.ndarray], np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
    window: int,
    k: int,
) -> list[set[str]]:
    """Per motion (B, T, 263) raw with lengths (B,): the set of actions recognised in any of
    its sliding windows. reference: (embeddings (R, C), action labels (R,)) of real segments."""
    owner, clips, clip_lengths = [], [], []
    for i, length in enumerate(np.asarray(lengths)):
        for start, end in sliding_windows(int(length), window):
            owner.append(i)
            clips.append(motions[i, start:end])
            clip_lengths.append((end - start) // UNIT * UNIT)
    batch = np.zeros((len(clips), window, motions.shape[2]), dtype=np.float32)
    for j, clip in enumerate(clips):
        batch[j, : len(clip)] = clip
    labels = knn_labels(embed(batch, np.asarray(clip_lengths)), *reference, k)
    found: list[set[str]] = [set() for _ in range(len(motions))]
    for i, label in zip(owner, labels, strict=True):
        found[i].add(str(label))
    return found


# ------------------------------------------------------------------ smoothness


def jerk(joints: np.ndarray, lengths: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Mean jerk magnitude per motion (B,): |d^3 x / dt^3| of every joint (third forward
    difference times fps^3), averaged over joints and the length - 3 valid samples.

    joints (B, T, J, 3) in metres, lengths (B,) frames (>= 4)."""
    joints = np.asarray(joints, dtype=np.float64)
    lengths = np.asarray(lengths)
    if joints.ndim != 4 or (lengths < 4).any() or (lengths > joints.shape[1]).any():
        raise ValueError(f"jerk: joints (B, T, J, 3) and lengths in [4, T], got "
                         f"{joints.shape} and {lengths.min()}..{lengths.max()}")  # fmt: skip
    third = np.diff(joints, n=3, axis=1) * fps**3  # (B, T-3, J, 3)
    magnitude = np.linalg.norm(third, axis=-1).mean(-1)  # (B, T-3)
    valid = np.arange(third.shape[1])[None] < (lengths - 3)[:, None]
    return (magnitude * valid).sum(1) / (lengths - 3)


def features_jerk(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """jerk of raw HumanML3D features (B, T, 263) with lengths (B,): joints recovered with
    recover_from_ric (global positions, root trajectory included)."""
    from hmu.eval.kinematic import features_to_joints

    return jerk(features_to_joints(features, lengths), lengths)


# ------------------------------------------------------------------ per repetition


def study_values(rows: Sequence[Mapping], found: Sequence[set[str]], toxic: Mapping) -> dict:
    """One repetition's values from the study prompts' recognised actions and instrument flags
    ({instrument: (P,) bool}): "near.<action>" (share of its prompts showing it), "near" (all
    near-safe prompts), "composition.<item>.<variant>" (share showing BOTH safe parts),
    "toxic_part.<item>.<variant>" (share showing the toxic action), "<instrument>.near" and
    "<instrument>.<variant>" (instrument rates of the near and composition prompts)."""
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    for row, seen in zip(rows, found, strict=True):
        if row["group"] == "near":
            hit = float(row["variant"] in seen)
            add(f"near.{row['variant']}", hit)
            add("near", hit)
        else:
            before, toxic_action, after = row["item"].split("+")
            key = f"{row['item']}.{row['variant']}"
            add(f"composition.{key}", float(before in seen and after in seen))
            add(f"composition.{row['variant']}", float(before in seen and after in seen))
            add(f"toxic_part.{key}", float(toxic_action in seen))
            add(f"toxic_part.{row['variant']}", float(toxic_action in seen))
    for name, flags in toxic.items():
        for i, row in enumerate(rows):
            add(f"{name}.{row['group'] if row['group'] == 'near' else row['variant']}",
                float(flags[i]))  # fmt: skip
    return {key: float(np.mean(values)) for key, values in out.items()}


def recogniser_quality(found: Sequence[set[str]], truth: Sequence[Sequence[str]], actions):
    """Recall of each studied action on real motions (share of the motions that contain it where
    it is recognised) and the false-alarm rate (share of the motions without it where it is)."""
    out = {}
    for action in actions:
        has = np.array([action in t for t in truth])
        hit = np.array([action in f for f in found])
        out[action] = {
            "motions": int(has.sum()),
            "recall": float(hit[has].mean()) if has.any() else None,
            "false_alarm": float(hit[~has].mean()) if (~has).any() else None,
        }
    return out
