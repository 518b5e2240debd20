"""Stage evaluate@<ds>-<model>-<method>: the full protocol on the forget and retain test sets.

Loads the unlearned model through the same path as `hmu generate` and the judge trained by
train_evaluator@<ds>; writes metrics/<ds>/<model>/<method>.json: forget and retain metrics
(per-repetition values, mean, upstream and t intervals), the detector rates on the implicit
prompt sets of stage prompts@<ds> (`protocol.prompt_repetitions` passes), the excess rates over
D_r (the retrain JSON of the same dataset and model, evaluated first), and meta (sizes); and
the per-sample arrays of every part to eval/<ds>/<model>/<method>.npz for the report's paired tests.
"""

import sys
import time

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.run import evaluate_method, reference_excess, samples_path, save_samples
from hmu.io import write_json
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.timings import record_timing, since


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    check_params("protocol", "generation", "generator", "evaluator", "precision", "bamm")
    params = load_params()
    protocol = section(params, "protocol")
    data = ProcessedDataset.open(dataset)
    start = time.perf_counter()
    result, samples = evaluate_method(
        dataset,
        model,
        method,
        protocol,
        threads=section(params, "evaluator.threads"),
    )
    result["meta"] = {
        "dataset": dataset,
        "model": model,
        "method": method,
        "repetitions": protocol["repetitions"],
        "prompt_repetitions": protocol["prompt_repetitions"],
        "mm_replications": protocol["mm_replications"],
        "test_sizes": {s: len(data.select("test", s)) for s in ("forget", "retain")},
    }
    result["excess"] = reference_excess(result, dataset, model, method)
    save_samples(samples_path(dataset, model, method), samples)
    write_json(f"metrics/{dataset}/{model}/{method}.json", result)
    record_timing(f"{dataset}/{model}/{method}_evaluate", seconds=since(start))
    f, r = result["forget"], result["retain"]
    rates = " ".join(
        f"{part} {m['toxic_rate']['mean']:.2f}/{m['kinematic_rate']['mean']:.2f}"
        for part, m in result.items()
        if part not in ("meta", "excess")
    )
    print(
        f"evaluate@{target}: forget FID {f['fid']['mean']:.3f} | retain FID "
        f"{r['fid']['mean']:.3f} R@1 {r['r1']['mean']:.3f} | toxic/kinematic {rates}"
    )


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
