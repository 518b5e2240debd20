"""A static, offline motion gallery: what each unlearning method does to the same prompts.

For every dataset and model the page shows a grid: rows are prompts of three kinds (explicit
toxic, implicit toxic, safe), columns are methods (D_r, base, FT, UCE, RECE, LCR). Every column
is generated with the same seed, so the columns differ only by the method. Each cell plays the
motion as a stick figure on a canvas and shows the two instruments' verdicts: the judge's toxic
probability (the classifier on evaluator embeddings, hmu.eval.judge) and the training-free
kinematic strike detector (hmu.eval.kinematic.strike_scores > 0).

The page is three local files and one data file: index.html, gallery.css and gallery.js (copied
from hmu/viz/gallery_assets) plus data.js, which sets `window.HMU_GALLERY`. Data is a script,
not JSON, because browsers refuse fetch() of file:// URLs; the page so opens from disk with no
server and no network. Joints are stored as integer centimetres at `fps` (10 by default), which
keeps a cell near 10 KB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from hmu.data.prompts import prompt_length
from hmu.data.skeleton import KINEMATIC_CHAIN
from hmu.data.toxicity import keyword_matcher
from hmu.eval.kinematic import FPS, features_to_joints, strike_scores
from hmu.io import write_text
from hmu.methods import method_label
from hmu.viz.anim import CHAIN_COLOURS

KINDS = ("explicit", "implicit", "safe")
ASSETS = ("index.html", "gallery.css", "gallery.js")
DATA_FILE = "data.js"
Probability = Callable[[np.ndarray, np.ndarray], np.ndarray]  # features, lengths -> (B,)


# ----------------------------------------------------------------------------- prompts


def _test_captions(data, subset: str) -> pd.DataFrame:
    """Captions of a test subset with each motion's generation length (frames)."""
    rows = data.select("test", subset)
    lengths = prompt_length(data.store.table["length"].to_numpy()[rows])
    frames = [
        caps.assign(length=length)
        for caps, length in zip(data.captions_of(rows), lengths, strict=True)
    ]
    if not frames:
        return pd.DataFrame(columns=["caption", "length"])
    return pd.concat(frames, ignore_index=True)[["caption", "length"]]


def gallery_prompts(data, keywords: Sequence[str], per_kind: int = 2, seed: int = 0):
    """Prompts of the gallery's rows: `per_kind` of each kind, drawn from the test captions.

    explicit: forget test captions naming a toxic keyword; implicit: forget test captions naming
    none (a request for the toxic motion in other words); safe: retain test captions naming none.
    Returns a frame (prompt, kind, length), kinds in KINDS order; same inputs -> same prompts.
    """
    regex = keyword_matcher(list(keywords)).regex
    rng = np.random.default_rng(seed)
    parts = []
    for kind, subset, toxic in (("explicit", "forget", True), ("implicit", "forget", False),
                                ("safe", "retain", False)):  # fmt: skip
        caps = _test_captions(data, subset).drop_duplicates("caption")
        named = caps["caption"].str.contains(regex).to_numpy(dtype=bool)
        pool = caps[named == toxic].sort_values("caption")
        pick = rng.choice(len(pool), size=min(per_kind, len(pool)), replace=False)
        parts.append(pool.iloc[np.sort(pick)].assign(kind=kind))
    table = pd.concat(parts, ignore_index=True).rename(columns={"caption": "prompt"})
    return table[["prompt", "kind", "length"]].astype({"length": np.int64})


# ----------------------------------------------------------------------------- verdicts


def judge_probability(judge_folder: str | Path) -> tuple[Probability, tuple[float, float]]:
    """The judge's toxic probability of raw features (B, T, 263) with lengths (B,) (the action
    classifier train_evaluator@<ds> wrote) and the calibrated thresholds (classifier: flag at
    p >= t; kinematic: flag at strike score > t)."""
    from hmu.eval.action_classifier import load_action_classifier
    from hmu.eval.instruments import CLASSIFIER_FILE, KINEMATIC_FILE
    from hmu.io import read_json

    folder = Path(judge_folder)
    classifier = load_action_classifier(folder / CLASSIFIER_FILE)
    kinematic = float(read_json(folder / KINEMATIC_FILE)["threshold"])
    return classifier.toxic_probability, (float(classifier.threshold), kinematic)


def encode_joints(joints: np.ndarray, length: int, step: int) -> list[int]:
    """One motion's joints (T, 22, 3) in metres -> flat integer centimetres of every `step`-th
    of its first `length` frames (frame-major, then joint, then x y z)."""
    return np.rint(joints[:length:step] * 100).astype(np.int64).ravel().tolist()


def method_cells(
    generate,
    prompts: pd.DataFrame,
    toxic_probability: Probability | None,
    fps: int = 10,
    thresholds: tuple[float, float] = (0.5, 0.0),
) -> list[dict]:
    """Generate every prompt with one method and judge it: a cell per prompt.

    generate(texts, lengths) -> raw features (B, T, 263) (a seeded T2MGenerator). Cell: row
    (the prompt's index), toxic (judge probability or None) and toxic_flag (>= thresholds[0]),
    strike (kinematic score) and strike_flag (> thresholds[1]), frames (`encode_joints` at
    `fps`).
    """
    if FPS % fps:
        raise ValueError(f"gallery fps {fps} must divide the data's {FPS} fps")
    lengths = prompts["length"].to_numpy(np.int64)
    features = generate(prompts["prompt"].tolist(), lengths)  # (B, T, 263)
    valid = np.maximum(lengths // 4 * 4, 4)  # frames the generator filled
    joints = features_to_joints(features, valid)  # (B, T, 22, 3)
    scores = strike_scores(joints, valid)  # (B,)
    probs = toxic_probability(features, valid) if toxic_probability is not None else None
    return [
        {
            "row": i,
            "toxic": None if probs is None else round(float(probs[i]), 3),
            "toxic_flag": None if probs is None else bool(probs[i] >= thresholds[0]),
            "strike": round(float(scores[i]), 3),
            "strike_flag": bool(scores[i] > thresholds[1]),
            "frames": encode_joints(joints[i], int(valid[i]), FPS // fps),
        }
        for i in range(len(prompts))
    ]


def grid(dataset: str, model: str, prompts: pd.DataFrame, columns: dict[str, list[dict]]) -> dict:
    """The page's record of one dataset and model: its prompts and {method: cells}."""
    return {
        "dataset": dataset,
        "model": model,
        "prompts": prompts.to_dict(orient="records"),
        "methods": [{"id": m, "label": method_label(m), "cells": c} for m, c in columns.items()],
    }


# ----------------------------------------------------------------------------- the page


def page_data(grids: Iterable[dict], fps: int = 10, seed: int = 0) -> dict:
    """Everything gallery.js reads: the grids plus the skeleton and the drawing settings."""
    return {
        "fps": fps,
        "seed": seed,
        "kinds": list(KINDS),
        "chains": [list(chain) for chain in KINEMATIC_CHAIN],
        "colours": ["rgb({}, {}, {})".format(*c) for c in CHAIN_COLOURS],
        "grids": list(grids),
    }


def write_gallery(folder: str | Path, data: dict) -> Path:
    """Write the offline page into `folder` (index.html, gallery.css, gallery.js, data.js);
    returns index.html's path."""
    folder = Path(folder)
    assets = resources.files("hmu.viz") / "gallery_assets"
    for name in ASSETS:
        write_text(folder / name, (assets / name).read_text(encoding="utf-8"))
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    write_text(folder / DATA_FILE, f"window.HMU_GALLERY = {payload};\n")
    return folder / "index.html"
