"""Stage evaluate@<ds>-<model>-<method>: the full protocol on the forget and retain test sets.

Loads the unlearned model through the same path as `hmu generate` and the judge trained by
train_evaluator@<ds>; writes metrics/<ds>/<model>/<method>.json: forget and retain metrics
(mean and 95% CI over repetitions), the toxic-action rate on implicit prompts (captions of
forget test motions without any toxic keyword), and meta (sizes, timings).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.toxicity import keyword_matcher
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import MAX_LEN, ProtocolConfig, eval_length, evaluate_set, toxic_rate
from hmu.generate import load_generator
from hmu.io import write_json
from hmu.params import load_params, processed_dir, section


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


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    params = load_params()
    torch.set_num_threads(section(params, "evaluator.threads"))
    keywords = section(params, f"toxicity.{dataset}.keywords")
    proto = ProtocolConfig(**section(params, "protocol")).validate()
    data = ProcessedDataset.open(dataset)
    judge_folder = Path("models") / dataset / "evaluator"
    judge = load_judge(judge_folder)
    # the text_emb stage already encoded every caption with the generator's encoder
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    generate = load_generator(dataset, model, method, seed=proto.seed, text_cache=cache)
    start = time.perf_counter()
    result = {
        part: evaluate_set(test_set(data, part, judge_folder), generate, judge, proto)
        for part in ("forget", "retain")
    }
    prompts, lengths = implicit_prompts(data, keywords)
    result["implicit"] = toxic_rate(prompts, lengths, generate, judge, proto)
    unlearn = json.loads(Path(f"metrics/{dataset}/{model}/{method}_unlearn.json").read_text())
    result["meta"] = {
        "dataset": dataset,
        "model": model,
        "method": method,
        "repetitions": proto.repetitions,
        "mm_replications": proto.mm_replications,
        "test_sizes": {s: len(data.select("test", s)) for s in ("forget", "retain")},
        "unlearn_seconds": unlearn["unlearn_seconds"],
        "eval_seconds": round(time.perf_counter() - start, 1),
    }
    write_json(f"metrics/{dataset}/{model}/{method}.json", result)
    f, r = result["forget"], result["retain"]
    toxic = f.get("toxic_rate", {}).get("mean")
    print(
        f"evaluate@{target}: forget FID {f['fid']['mean']:.3f} toxic {toxic}"
        f" | retain FID {r['fid']['mean']:.3f} R@1 {r['r1']['mean']:.3f}"
        f" | implicit toxic {result['implicit'].get('toxic_rate')}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
