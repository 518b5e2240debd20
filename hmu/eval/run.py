"""Evaluate one unlearned model on the benchmark: forget set, retain set, prompt lists.

The judge and the generator load once; the generator restarts its random stream at
`protocol.seed` for every part, so a part's numbers do not depend on the others (or on their
order). On 2 CPU cores torch's two threads already scale almost perfectly for these models
(measured: 17 s vs 32 s per part), so the parts run in turn.

A method's result is {part: metrics} (the metrics JSON, plus "excess" and "meta" added by the
stage) and its per-sample arrays {"<part>.<name>": array} (eval/<ds>/<model>/<method>.npz), which
the report's paired tests read. Parts: the test sets "forget" and "retain", then one part per
prompt list of stage prompts@<ds> ("implicit_seen", "implicit_heldout"; any name works).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import Evaluation, ProtocolConfig, evaluate_prompts, evaluate_set_samples
from hmu.eval.stats import excess_over_reference
from hmu.io import atomic_path
from hmu.params import processed_dir

TEST_SETS = ("forget", "retain")
REFERENCE_METHOD = "retrain"  # D_r: the excess rates are measured against it
SAMPLES_DIR = Path("eval")  # per-sample arrays, a DVC-cached output (not git-tracked)

Prompts = tuple[list[str], np.ndarray]  # prompts and their lengths in frames


PROMPTS_FILE = "prompts.parquet"  # written by stage prompts@<ds> (hmu.data.prompts)


def prompt_sets(dataset: str) -> dict[str, Prompts]:
    """{kind: (prompts, lengths)} of data/processed/<ds>/prompts.parquet, one part per prompt
    kind ("implicit_seen", "implicit_heldout"), in the file's order."""
    path = processed_dir(dataset) / PROMPTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro prompts@{dataset}`")
    table = pd.read_parquet(path, columns=["prompt", "kind", "length"])
    return {
        kind: (rows["prompt"].tolist(), rows["length"].to_numpy(dtype=np.int64))
        for kind, rows in table.groupby("kind", sort=False)
    }


def evaluate_method(
    dataset: str,
    model: str,
    method: str,
    protocol: dict,
    threads: int = 2,
    prompts: Mapping[str, Prompts] | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """({part: metrics}, {"<part>.<array>": array}) of models/<ds>/<model>/<method>.

    Parts: the test sets "forget" and "retain", then one per prompt list of `prompts`
    ({part name: (prompts, lengths)}; default `prompt_sets(dataset)`), each generated
    protocol.prompt_repetitions times. The judge and the
    generator load once; the generator restarts its random stream at `protocol.seed` for
    every part, so a part's numbers depend neither on the others nor on their order."""
    from hmu.generate import load_generator

    torch.set_num_threads(threads)
    proto = ProtocolConfig(**protocol).validate()
    data = ProcessedDataset.open(dataset)
    judge_folder = Path("models") / dataset / "evaluator"
    judge = load_judge(judge_folder)
    # the text_emb stage already encoded every caption with the generator's encoder
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    generate = load_generator(dataset, model, method, seed=proto.seed, text_cache=cache)
    parts: dict[str, Evaluation] = {}
    for part in TEST_SETS:
        generate.reseed(proto.seed)
        test = test_set(data, part, judge_folder)
        parts[part] = evaluate_set_samples(test, generate, judge, proto)
    for part, (texts, lengths) in (prompt_sets(dataset) if prompts is None else prompts).items():
        generate.reseed(proto.seed)
        parts[part] = evaluate_prompts(
            texts, lengths, generate, judge, proto, proto.prompt_repetitions
        )
    result = {part: evaluation.metrics for part, evaluation in parts.items()}
    samples = {
        f"{part}.{name}": array
        for part, evaluation in parts.items()
        for name, array in evaluation.samples.items()
    }
    return result, samples


def samples_path(dataset: str, model: str, method: str, root: str | os.PathLike = SAMPLES_DIR):
    """Where a method's per-sample arrays live: <root>/<ds>/<model>/<method>.npz."""
    return Path(root) / dataset / model / f"{method}.npz"


def save_samples(path: str | os.PathLike, samples: Mapping[str, np.ndarray]) -> None:
    """Write per-sample arrays to an .npz atomically (uncompressed: embeddings barely shrink)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **samples)


def load_samples(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays save_samples wrote."""
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


def reference_excess(
    result: dict, dataset: str, model: str, method: str, metrics_dir: str | os.PathLike = "metrics"
) -> dict:
    """The "excess" block of a method's JSON: its rates minus D_r's (the `retrain` JSON of the
    same dataset and model, which must be evaluated first; {} with a warning when absent)."""
    if method == REFERENCE_METHOD:
        return excess_over_reference(result, result)
    path = Path(metrics_dir) / dataset / model / f"{REFERENCE_METHOD}.json"
    if not path.exists():
        print(f"warning: {path} is missing; no excess rates for {dataset}/{model}/{method}")
        return {}
    return excess_over_reference(result, json.loads(path.read_text(encoding="utf-8")))
