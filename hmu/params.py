"""Reading params.yaml for the stage scripts, with clear errors for missing or bad keys.

Stage scripts read their params blocks here and pass plain values, configs and arrays to the
library, whose functions never take the params dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path(os.environ.get("HMU_PARAMS", "params.yaml"))


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params.yaml as a dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (run stages from the repository root)")
    return yaml.safe_load(path.read_text()) or {}


def section(params: dict[str, Any], dotted: str) -> Any:
    """params['a']['b'] for dotted='a.b'; KeyError naming the missing key."""
    node: Any = params
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(dotted.split(".")[:i]) or "<top>"
            raise KeyError(f"params.yaml: missing key {part!r} under {where!r} (wanted {dotted})")
        node = node[part]
    return node


def processed_dir(dataset: str) -> Path:
    """data/processed/<dataset>: where a dataset's tables live."""
    return Path("data/processed") / dataset


PROFILES = ("small", "paper")


def profile_block(params: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, train settings) of params[name][profile] for the active `profile`."""
    profile = section(params, "profile")
    if profile not in PROFILES:
        raise ValueError(f"params.yaml: profile must be one of {PROFILES}, got {profile!r}")
    block = section(params, f"{name}.{profile}")
    return dict(block.get("model") or {}), dict(section(params, f"{name}.{profile}.train"))


def train_seed(params: dict[str, Any]) -> int:
    """params.yaml `train.seed`: the training-seed offset every training stage adds to its
    schedule's seed (VQ-VAE, transformers, length estimator, fine-tuning). 0 (the default, and
    the value when the block is absent) trains the committed models; `dvc exp run -S
    train.seed=1` replicates the whole benchmark under new training seeds (hmu.eval.seeds)."""
    return int(params.get("train", {}).get("seed", 0))


def set_by_data(model_cfg: dict[str, Any], name: str, **sizes: Any) -> dict[str, Any]:
    """model_cfg plus the sizes the data decides (codebook size, text width, ...); params.yaml
    must not set them."""
    clash = sorted(set(sizes) & set(model_cfg))
    if clash:
        raise ValueError(f"params.yaml {name}: {clash} are set by the data, remove them")
    return {**model_cfg, **sizes}
