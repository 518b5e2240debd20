"""Stage train_evaluator@<dataset>: the judge of the benchmark, trained per dataset.

Trains the Guo et al. evaluator on all training motions (forget and retain, as upstream) and the
toxic-action classifier on its motion embeddings; evaluates the ground-truth rows ("Real motion")
of both test sets with the full protocol. Writes models/<ds>/evaluator/ and
metrics/<ds>/evaluator.json, metrics/<ds>/real.json.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.eval.judge import (
    embed_motion_list,
    fit_classifier,
    load_judge,
    save_classifier,
    test_set,
    tokens_of,
    toxic_labels,
    write_judge_assets,
)
from hmu.eval.protocol import ProtocolConfig, evaluate_set
from hmu.io import write_json
from hmu.models.evaluator import save_evaluator
from hmu.params import load_params, section
from hmu.train.evaluator import train_evaluator

SETS = ("forget", "retain")


def _pairs(data: ProcessedDataset, rows: np.ndarray):
    """(motion, tokens) per caption: a motion repeats once per caption (same array object)."""
    motions, tokens = [], []
    for motion, caps in zip(data.motions(rows), data.captions_of(rows), strict=True):
        for t in tokens_of(caps):
            motions.append(motion)
            tokens.append(t)
    return motions, tokens


def main(dataset: str) -> None:
    params = load_params()
    cfg = section(params, "evaluator")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    torch.set_num_threads(cfg["threads"])
    data = ProcessedDataset.open(dataset)
    out = Path("models") / dataset / "evaluator"
    train_rows, val_rows = data.select("train"), data.select("val")
    start = time.perf_counter()
    motions, tokens = _pairs(data, train_rows)
    val_motions, val_tokens = _pairs(data, val_rows)
    evaluator = train_evaluator(
        motions,
        tokens,
        cfg["train"],
        seed=cfg["seed"],
        val_motions=val_motions,
        val_token_lists=val_tokens,
        mean=data.mean,
        std=data.std,
        glove_dir=cfg["glove_dir"],
    )
    save_evaluator(evaluator, out / "evaluator.safetensors")
    train_seconds = time.perf_counter() - start

    test_rows = data.select("test")
    emb_train = embed_motion_list(evaluator, data.motions(train_rows))
    classifier = fit_classifier(emb_train, toxic_labels(data, train_rows), seed=cfg["seed"])
    save_classifier(out / "toxic_classifier.safetensors", classifier)
    with torch.no_grad():
        emb_test = torch.from_numpy(embed_motion_list(evaluator, data.motions(test_rows)))
        predicted = classifier(emb_test).numpy() >= 0.5
    labels = toxic_labels(data, test_rows)
    accuracy = float((predicted == labels).mean())
    recall = float(predicted[labels].mean()) if labels.any() else float("nan")

    write_judge_assets(data, evaluator, keywords, out)
    judge = load_judge(out)
    proto = ProtocolConfig(**section(params, "protocol")).validate()
    real = {part: evaluate_set(test_set(data, part, out), None, judge, proto) for part in SETS}
    sizes = {part: len(data.select("test", part)) for part in SETS}
    real["meta"] = {
        "classifier_accuracy": accuracy,
        "classifier_toxic_recall": recall,
        "repetitions": proto.repetitions,
        "test_sizes": sizes,
    }
    write_json(f"metrics/{dataset}/real.json", real)
    summary = {
        "train_seconds": round(train_seconds, 1),
        "train_pairs": len(motions),
        "classifier_accuracy": accuracy,
        "classifier_toxic_recall": recall,
        **{
            f"real_{s}_{k}": real[s][k]["mean"]
            for s in ("forget", "retain")
            for k in ("r1", "r3", "mm_dist", "fid")
        },
    }
    write_json(f"metrics/{dataset}/evaluator.json", summary)
    print(f"train_evaluator@{dataset}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
