"""Stage gallery: metrics/gallery/index.html, the offline motion gallery (hmu.viz.gallery).

For each dataset and model, generates the gallery's prompts (params `gallery.per_kind` of each
kind) with every method of params `methods`, each loaded like the evaluation does
(models/<ds>/<model>/<method>/method.json) with the same seed `gallery.seed`, and judges them with
models/<ds>/evaluator. Reads params `datasets`, `models`, `methods`, `gallery`,
`toxicity.<ds>.keywords`, `generation`, `generator.text_encoder`, `generator.clip_weights`.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.generate import load_generator
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.viz.gallery import (
    gallery_prompts,
    grid,
    judge_probability,
    method_cells,
    page_data,
    write_gallery,
)

OUT = Path("metrics/gallery")


def dataset_grids(dataset: str, params: dict) -> list[dict]:
    """The grids (one per model) of one dataset."""
    cfg = section(params, "gallery")
    data = ProcessedDataset.open(dataset)
    keywords = section(params, f"toxicity.{dataset}.keywords")
    prompts = gallery_prompts(data, keywords, cfg["per_kind"], cfg["seed"])
    probability, thresholds = judge_probability(Path("models") / dataset / "evaluator")
    # the text_emb stage already encoded every caption with the generators' encoder
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    grids = []
    for model in section(params, "models"):
        columns = {}
        for method in ["retrain", *section(params, "methods")]:
            generate = load_generator(dataset, model, method, seed=cfg["seed"], text_cache=cache)
            columns[method] = method_cells(generate, prompts, probability, cfg["fps"], thresholds)
        grids.append(grid(dataset, model, prompts, columns))
    return grids


def main(out: Path = OUT) -> None:
    check_params("datasets", "models", "methods", "gallery", "generation", "generator")
    params = load_params()
    torch.set_num_threads(section(params, "generator.threads"))
    cfg = section(params, "gallery")
    grids = [g for ds in section(params, "datasets") for g in dataset_grids(ds, params)]
    index = write_gallery(out, page_data(grids, cfg["fps"], cfg["seed"]))
    cells = sum(len(m["cells"]) for g in grids for m in g["methods"])
    print(f"gallery: wrote {index} ({len(grids)} grids, {cells} motions)")


if __name__ == "__main__":
    exits_on_bad_input(main)(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
