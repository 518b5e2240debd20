"""Stage train_evaluator@<dataset>: the judge of the benchmark, trained per dataset.

Trains the Guo et al. evaluator on all training motions (forget and retain, as upstream), or
loads the released one when evaluator.checkpoint is set (hmu.pretrained.upstream_evaluator); fits
and calibrates the two toxicity instruments (hmu.eval.instruments: validation split for the
thresholds, test split for their quality); writes the judge's precomputed assets and evaluates
the ground-truth rows ("Real motion") of both test sets with the full protocol.
Writes models/<ds>/evaluator/ and metrics/<ds>/evaluator.json, metrics/<ds>/real.json
(with "instruments": ROC-AUC, TPR, FPR and threshold of both, on real test motions).
Timings go to the log only.
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.instruments import fit_instruments
from hmu.eval.judge import load_judge, test_set, toxic_labels, write_judge_assets
from hmu.eval.protocol import ProtocolConfig, evaluate_set
from hmu.io import write_json
from hmu.models.evaluator import save_evaluator
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.pretrained import upstream_evaluator
from hmu.train.evaluator import caption_pairs, train_evaluator

SETS = ("forget", "retain")


def main(dataset: str) -> None:
    check_params("evaluator", "protocol", f"toxicity.{dataset}.keywords")
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
    evaluator = upstream_evaluator(cfg, data.mean, data.std)  # evaluator.checkpoint, if set
    if evaluator is None:
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

    print(f"train_evaluator@{dataset}: evaluator trained in {train_seconds:.0f} s")

    labelled = [
        (data.motions(rows), toxic_labels(data, rows)) for rows in (train_rows, val_rows, test_rows)
    ]
    instruments = fit_instruments(
        *labelled,
        out,
        max_fpr=section(params, "evaluator.instruments.max_fpr"),
        classifier_params=section(params, "evaluator.instruments.classifier"),
        seed=cfg["seed"],
    )
    write_judge_assets(data, evaluator, keywords, out)
    judge = load_judge(out)
    real = {part: evaluate_set(test_set(data, part, out), None, judge, proto) for part in SETS}
    real["instruments"] = instruments
    real["meta"] = {
        "repetitions": proto.repetitions,
        "test_sizes": {part: len(data.select("test", part)) for part in SETS},
    }
    write_json(f"metrics/{dataset}/real.json", real)
    summary = {
        "train_pairs": len(motions),
        **{f"{name}_{k}": v for name, q in instruments.items() for k, v in q.items()},
        **{
            f"real_{s}_{k}": real[s][k]["mean"]
            for s in SETS
            for k in ("r1", "r3", "mm_dist", "fid")
        },
    }
    write_json(f"metrics/{dataset}/evaluator.json", summary)
    print(f"train_evaluator@{dataset}: {summary}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
