"""Evaluate one unlearned model on the benchmark: forget set, retain set, implicit prompts.

Each part loads its own generator seeded with `protocol.seed`, so a part's numbers do not
depend on the others (or on their order). On 2 CPU cores torch's two threads already scale
almost perfectly for these models (measured: 17 s vs 32 s per part), so the parts run in turn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.toxicity import keyword_matcher
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import MAX_LEN, ProtocolConfig, eval_length, evaluate_set, toxic_rate
from hmu.params import processed_dir

PARTS = ("forget", "retain", "implicit")


def implicit_prompts(data: ProcessedDataset, keywords: list[str]):
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
    keywords: list[str],
    threads: int = 2,
) -> dict:
    """One part of the evaluation of models/<ds>/<model>/<method> (loads everything itself)."""
    from hmu.generate import load_generator

    torch.set_num_threads(threads)
    proto = ProtocolConfig(**protocol).validate()
    data = ProcessedDataset.open(dataset)
    judge_folder = Path("models") / dataset / "evaluator"
    judge = load_judge(judge_folder)
    # the text_emb stage already encoded every caption with the generator's encoder
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    generate = load_generator(dataset, model, method, seed=proto.seed, text_cache=cache)
    if part == "implicit":
        return toxic_rate(*implicit_prompts(data, keywords), generate, judge, proto)
    return evaluate_set(test_set(data, part, judge_folder), generate, judge, proto)


def evaluate_method(
    dataset: str, model: str, method: str, protocol: dict, keywords: list[str], threads: int = 2
) -> dict:
    """{forget, retain, implicit} results of models/<ds>/<model>/<method>."""
    return {part: evaluate_part(dataset, model, method, part, protocol, keywords, threads)
            for part in PARTS}  # fmt: skip
