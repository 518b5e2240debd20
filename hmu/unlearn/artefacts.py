"""Where each unlearning method's model lives, and loading our saved modules by class name.

Every method writes models/<ds>/<model>/<method>/method.json naming the pieces a generator is
assembled from: {"vq": folder, "trans": file, "res": file, "lcr_delta": file or null}. Methods
that change nothing in a piece point at the shared base artefact instead of copying it.
"""

from __future__ import annotations

from pathlib import Path

from hmu.io import write_json

MODELS = Path("models")


def base_pieces(dataset: str, model: str, subset: str = "all") -> dict:
    """The pieces of the model trained on `subset` (all = base, retain = the D_r reference)."""
    root = MODELS / dataset
    return {
        "vq": str(root / f"vq_{subset}"),
        "trans": str(root / f"{model}_{subset}" / "trans.safetensors"),
        "res": str(root / f"res_{subset}" / "res.safetensors"),
        "lcr_delta": None,
    }


def method_dir(dataset: str, model: str, method: str) -> Path:
    return MODELS / dataset / model / method


def write_method(dataset: str, model: str, method: str, pieces: dict, seconds: float) -> None:
    """Write method.json (the pieces and the method's wall time) and the time alone to
    metrics/<ds>/<model>/<method>_unlearn.json, which the evaluation reports."""
    write_json(
        method_dir(dataset, model, method) / "method.json", {**pieces, "info": {"seconds": seconds}}
    )
    write_json(f"metrics/{dataset}/{model}/{method}_unlearn.json", {"unlearn_seconds": seconds})
