"""Stage evaluate@<ds>-<model>-<method>: the full protocol on the forget and retain test sets.

Loads the unlearned model through the same path as `hmu generate` and the judge trained by
train_evaluator@<ds>; writes metrics/<ds>/<model>/<method>.json: forget and retain metrics
(per-repetition values, mean, upstream and t intervals), the detector rates on implicit prompts
(captions of forget test motions without any toxic keyword), the excess rates over D_r (the
retrain JSON of the same dataset and model), and meta (sizes, timings); and the per-sample
arrays of every part to eval/<ds>/<model>/<method>.npz for the report's paired tests.
"""

import sys
import time

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input, read_json
from hmu.eval.run import evaluate_method, reference_excess, samples_path, save_samples
from hmu.io import write_json
from hmu.params import load_params, section
from hmu.params_schema import check_params


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    check_params("protocol", "generation", "generator", "evaluator", f"toxicity.{dataset}.keywords")
    params = load_params()
    protocol = section(params, "protocol")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    data = ProcessedDataset.open(dataset)
    start = time.perf_counter()
    result, samples = evaluate_method(
        dataset, model, method, protocol, keywords, threads=section(params, "evaluator.threads")
    )
    unlearn = read_json(f"metrics/{dataset}/{model}/{method}_unlearn.json")
    result["meta"] = {
        "dataset": dataset,
        "model": model,
        "method": method,
        "repetitions": protocol["repetitions"],
        "mm_replications": protocol["mm_replications"],
        "test_sizes": {s: len(data.select("test", s)) for s in ("forget", "retain")},
        "unlearn_seconds": unlearn["unlearn_seconds"],
        "eval_seconds": round(time.perf_counter() - start, 1),
    }
    result["excess"] = reference_excess(result, dataset, model, method)
    save_samples(samples_path(dataset, model, method), samples)
    write_json(f"metrics/{dataset}/{model}/{method}.json", result)
    f, r = result["forget"], result["retain"]
    toxic = f.get("toxic_rate", {}).get("mean")
    print(
        f"evaluate@{target}: forget FID {f['fid']['mean']:.3f} toxic {toxic}"
        f" | retain FID {r['fid']['mean']:.3f} R@1 {r['r1']['mean']:.3f}"
        f" | implicit toxic {result['implicit'].get('toxic_rate', {}).get('mean')}"
    )


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
