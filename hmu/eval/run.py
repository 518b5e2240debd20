"""Evaluate one unlearned model on the benchmark: forget set, retain set, prompt lists.

Each part loads its own generator seeded with `protocol.seed`, so a part's numbers do not
depend on the others (or on their order). On 2 CPU cores torch's two threads already scale
almost perfectly for these models (measured: 17 s vs 32 s per part), so the parts run in turn.

A method's result is {part: metrics} (the metrics JSON, plus "excess" and "meta" added by the
stage) and its per-sample arrays {"<part>.<name>": array} (eval/<ds>/<model>/<method>.npz), which
the report's paired tests read. Parts: the test sets "forget" and "retain", then one part per
prompt list (today "implicit"; any name works).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.toxicity import keyword_matcher
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import (
    MAX_LEN,
    Evaluation,
    ProtocolConfig,
    eval_length,
    evaluate_prompts,
    evaluate_set_samples,
)
from hmu.eval.stats import excess_over_reference
from hmu.io import atomic_path
from hmu.params import processed_dir

TEST_SETS = ("forget", "retain")
REFERENCE_METHOD = "retrain"  # D_r: the excess rates are measured against it
SAMPLES_DIR = Path("eval")  # per-sample arrays, a DVC-cached output (not git-tracked)

Prompts = tuple[list[str], np.ndarray]  # prompts and their lengths in frames


def implicit_prompts(data: ProcessedDataset, keywords: list[str]) -> Prompts:
    """Captions of forget test motions that contain no toxic keyword, with motion lengths."""
    rows = data.select("test", "forget")
    regex = keyword_matcher(keywords).regex
    prompts, lengths = [], []
    rng = np.random.default_rng(0)
    for row, caps in zip(rows, data.captions_of(rows), strict=True):
        length = eval_length(min(int(data.store.table["length"].iat[row]), MAX_LEN), rng)
        for caption in caps["caption"]:
            if not regex.search(caption):
                prompts.append(caption)
                lengths.append(length)
    return prompts, np.array(lengths, dtype=np.int64)


def evaluate_part(
    dataset: str,
    model: str,
    method: str,
    part: str,
    protocol: dict,
    prompts: Prompts | None = None,
    threads: int = 2,
) -> Evaluation:
    """One part of the evaluation of models/<ds>/<model>/<method> (loads everything itself):
    a test set ("forget", "retain") or, given `prompts`, a prompt list."""
    from hmu.generate import load_generator

    if part not in TEST_SETS and prompts is None:
        raise ValueError(f"part {part!r}: not a test set {TEST_SETS}, and no prompts given")
    torch.set_num_threads(threads)
    proto = ProtocolConfig(**protocol).validate()
    data = ProcessedDataset.open(dataset)
    judge_folder = Path("models") / dataset / "evaluator"
    judge = load_judge(judge_folder)
    # the text_emb stage already encoded every caption with the generator's encoder
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    generate = load_generator(dataset, model, method, seed=proto.seed, text_cache=cache)
    if part in TEST_SETS:
        return evaluate_set_samples(test_set(data, part, judge_folder), generate, judge, proto)
    return evaluate_prompts(*prompts, generate, judge, proto)


def evaluate_method(
    dataset: str,
    model: str,
    method: str,
    protocol: dict,
    keywords: list[str],
    threads: int = 2,
    prompt_sets: Mapping[str, Prompts] | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """({part: metrics}, {"<part>.<array>": array}) of models/<ds>/<model>/<method>.

    prompt_sets: {part name: (prompts, lengths)}; default {"implicit": implicit_prompts}."""
    if prompt_sets is None:
        prompt_sets = {"implicit": implicit_prompts(ProcessedDataset.open(dataset), keywords)}
    parts = {part: None for part in TEST_SETS} | dict(prompt_sets)
    result, samples = {}, {}
    for part, prompts in parts.items():
        evaluation = evaluate_part(dataset, model, method, part, protocol, prompts, threads)
        result[part] = evaluation.metrics
        samples.update({f"{part}.{name}": a for name, a in evaluation.samples.items()})
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
