"""Stage train_evaluator@<dataset>: the judge of the benchmark, trained per dataset.

Trains the Guo et al. evaluator on all training motions (forget and retain, as upstream) and the
toxic-action classifier on its motion embeddings; writes the judge's precomputed assets and
evaluates the ground-truth rows ("Real motion") of both test sets with the full protocol.
Writes models/<ds>/evaluator/ and metrics/<ds>/evaluator.json, metrics/<ds>/real.json.
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.eval.judge import (
    classifier_quality,
    load_judge,
    save_classifier,
    test_set,
    toxic_labels,
    train_toxic_classifier,
    write_judge_assets,
)
from hmu.eval.protocol import ProtocolConfig, evaluate_set
from hmu.io import write_json
from hmu.models.evaluator import save_evaluator
from hmu.params import load_params, section
from hmu.train.evaluator import caption_pairs, train_evaluator

SETS = ("forget", "retain")


def main(dataset: str) -> None:
    params = load_params()
    cfg = section(params, "evaluator")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    proto = ProtocolConfig(**section(params, "protocol")).validate()
    torch.set_num_threads(cfg["threads"])
    data = ProcessedDataset.open(dataset)
    out = Path("models") / dataset / "evaluator"
    train_rows, val_rows, test_rows = (data.select(p) for p in ("train", "val", "test"))
    start = time.perf_counter()
    motions, tokens = caption_pairs(data, train_rows)
    val_motions, val_tokens = caption_pairs(data, val_rows)
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

    train_labels = toxic_labels(data, train_rows)
    classifier = train_toxic_classifier(
        evaluator, data.motions(train_rows), train_labels, seed=cfg["seed"]
    )
    save_classifier(out / "toxic_classifier.safetensors", classifier)
    test_motions, test_labels = data.motions(test_rows), toxic_labels(data, test_rows)
    quality = classifier_quality(classifier, evaluator, test_motions, test_labels)

    write_judge_assets(data, evaluator, keywords, out)
    judge = load_judge(out)
    real = {part: evaluate_set(test_set(data, part, out), None, judge, proto) for part in SETS}
    real["meta"] = {
        "classifier_accuracy": quality["accuracy"],
        "classifier_toxic_recall": quality["toxic_recall"],
        "repetitions": proto.repetitions,
        "test_sizes": {part: len(data.select("test", part)) for part in SETS},
    }
    write_json(f"metrics/{dataset}/real.json", real)
    summary = {
        "train_seconds": round(train_seconds, 1),
        "train_pairs": len(motions),
        "classifier_accuracy": quality["accuracy"],
        "classifier_toxic_recall": quality["toxic_recall"],
        **{
            f"real_{s}_{k}": real[s][k]["mean"]
            for s in SETS
            for k in ("r1", "r3", "mm_dist", "fid")
        },
    }
    write_json(f"metrics/{dataset}/evaluator.json", summary)
    print(f"train_evaluator@{dataset}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
