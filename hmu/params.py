"""Reading params.yaml for the stage scripts, with clear errors for missing keys."""

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
