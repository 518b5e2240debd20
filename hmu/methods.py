"""The methods the pipeline produced: models/<dataset>/<model>/<method>/method.json.

Every unlearn stage (and `hmu import-official`) writes one method.json that `hmu generate` and
the evaluation load; listing them tells what exists without reading dvc.yaml or params.yaml,
so methods added later (or imported official checkpoints) show up too.
"""

from __future__ import annotations

from pathlib import Path

METHOD_ORDER = ("retrain", "base", "finetune", "finetune_all", "uce", "rece", "lcr")  # report rows
MODEL_ORDER = ("momask", "bamm")
METHOD_LABELS = {
    "retrain": "D_r", "base": "base", "finetune": "FT", "finetune_all": "FT (all data)",
    "uce": "UCE", "rece": "RECE", "lcr": "LCR",
}  # fmt: skip


def order_key(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    """Sort key: known names in their order first, then the others alphabetically."""
    return (known.index(name) if name in known else len(known), name)


def _ordered(names, known: tuple[str, ...]) -> list[str]:
    return sorted(set(names), key=lambda n: order_key(n, known))


def discover_methods(models_root: str | Path = "models") -> dict[str, dict[str, list[str]]]:
    """{dataset: {model: [method, ...]}} of every models_root/<ds>/<model>/<method>/method.json,
    datasets alphabetical, models and methods in the report's order (unknown ones last)."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in Path(models_root).glob("*/*/*/method.json"):
        dataset, model, method = path.parts[-4:-1]
        found.setdefault(dataset, {}).setdefault(model, []).append(method)
    return {
        ds: {m: _ordered(found[ds][m], METHOD_ORDER) for m in _ordered(found[ds], MODEL_ORDER)}
        for ds in sorted(found)
    }


def method_label(method: str) -> str:
    """Display name of a method (D_r, FT, UCE, ...; unknown methods as they are)."""
    return METHOD_LABELS.get(method, method)
