"""Stage evaluate@<ds>-<model>-<method>: the full protocol on the forget and retain test sets.

Loads the unlearned model through the same path as `hmu generate` and the judge trained by
train_evaluator@<ds>; writes metrics/<ds>/<model>/<method>.json: forget and retain metrics
(per-repetition values, mean, upstream and t intervals), the detector rates on the implicit
prompt sets of stage prompts@<ds> (`protocol.prompt_repetitions` passes), the excess rates over
D_r (the retrain JSON of the same dataset and model, evaluated first), and meta (sizes, and
the precision of this run's training and generation: params `precision`); and
the per-sample arrays of every part to eval/<ds>/<model>/<method>.npz for the report's paired tests.
Without a D_r reference (source.<ds>.retain.kind none) retrain writes only {"absent": reason}
(and an .npz holding the reason), and every other method's "excess" is null, the reason in
meta.excess.
"""

import sys
import time
from pathlib import Path

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.run import (
    REFERENCE_METHOD,
    evaluate_method,
    reference_excess,
    samples_path,
    save_samples,
)
from hmu.io import write_json
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.pretrained import absent_reason, write_absent_npz
from hmu.timings import record_timing, since


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    check_params("protocol", "generation", "generator", "evaluator", "precision", "bamm")
    params = load_params()
    protocol = section(params, "protocol")
    data = ProcessedDataset.open(dataset)
    meta = {"dataset": dataset, "model": model, "method": method}
    reason = absent_reason(Path("models") / dataset / model / method)
    if reason is not None:  # the method was left out (retrain without a D_r reference)
        write_absent_npz(samples_path(dataset, model, method), reason)
        write_json(f"metrics/{dataset}/{model}/{method}.json", {"absent": reason, "meta": meta})
        return print(f"evaluate@{target}: absent ({reason})")
    start = time.perf_counter()
    result, samples = evaluate_method(
        dataset,
        model,
        method,
        protocol,
        threads=section(params, "evaluator.threads"),
    )
    result["meta"] = {
        **meta,
        "repetitions": protocol["repetitions"],
        "prompt_repetitions": protocol["prompt_repetitions"],
        "mm_replications": protocol["mm_replications"],
        "test_sizes": {s: len(data.select("test", s)) for s in ("forget", "retain")},
        "precision": {k: section(params, f"precision.{k}") for k in ("train", "generate")},
    }
    reference = Path("metrics") / dataset / model / f"{REFERENCE_METHOD}.json"
    no_reference = absent_reason(reference) if method != REFERENCE_METHOD else None
    if no_reference is None:
        result["excess"] = reference_excess(result, dataset, model, method)
    else:  # explicitly null, with the reason
        result["excess"], result["meta"]["excess"] = None, no_reference
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
