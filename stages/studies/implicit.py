"""Stage studies_implicit (studies/dvc.yaml): study 5 of issue 14, implicit-prompt robustness.

Reruns nothing: reads the main pipeline's metrics/<ds>/<model>/<method>.json (explicit, implicit
seen and held-out toxic rates per method) and study 1's outputs (the base model's generated
codes and the LCR variants' flags, eval/studies/lcr_ablation/<ds>-<model>.npz, and
metrics/studies/lcr_ablation/lcr_ablation.json) to explain LCR's explicit/implicit behaviour.
Writes metrics/studies/implicit/ (implicit.json, <ds>-<model>_rates.png, section.md).
"""

import time
from pathlib import Path

from hmu.errors import exits_on_bad_input, read_json
from hmu.eval.run import load_samples
from hmu.params import load_params
from hmu.studies import common, lcr_ablation
from hmu.studies import implicit as study

OUT = common.study_dir(study.STUDY)
LCR_JSON = common.study_dir(lcr_ablation.STUDY) / f"{lcr_ablation.STUDY}.json"
LCR_SAMPLES = common.SAMPLES_DIR / lcr_ablation.STUDY


def lcr_analysis(entry: dict, samples: dict, cfg) -> dict:
    """Code coverage, enriched-code overlap and the chosen LCR variants of study 1's entry."""
    rows = entry["rows"]
    selected = rows[lcr_ablation.DEFAULT]["selected"].get("0", [])
    names = samples["variants"].tolist()
    base, default = names.index(lcr_ablation.BASE), names.index(lcr_ablation.DEFAULT)
    coverage = {
        kind: study.toxic_coverage(
            samples[f"codes.{kind}"],
            samples[f"flags.{kind}.toxic_rate"][base],
            samples[f"flags.{kind}.toxic_rate"][default],
            selected,
        )
        for kind in study.KINDS
    }
    return {
        "coverage": coverage,
        "overlap": study.code_overlap(entry["code_usage"], selected, top=len(selected)),
        "variants": {n: rows[n] for n in cfg.lcr_variants if n in rows},
        "missing_variants": [n for n in cfg.lcr_variants if n not in rows],
    }


def run_one(dataset: str, model: str, cfg, lcr_entries: dict) -> tuple[dict, str]:
    tag = f"{dataset}-{model}"
    methods = [*dict.fromkeys(["base", *cfg.methods]), common.REFERENCE]
    results = {m: common.main_result(dataset, model, m) for m in methods}
    rows = study.method_table(results)
    shares = study.erased_shares(results)
    common.save_figure(
        study.figure(rows, f"{dataset} / {model}: toxic rate by prompt kind (95% t-intervals)"),
        OUT / f"{tag}_rates.png",
    )
    entry = {"methods": rows, "erased_share": shares}
    parts = [
        f"### {dataset} / {model}",
        study.rates_table(rows, shares),
        f"![toxic rate by prompt kind](studies/{study.STUDY}/{tag}_rates.png)",
    ]
    lcr = None
    if f"{dataset}/{model}" in lcr_entries:
        samples = load_samples(LCR_SAMPLES / f"{tag}.npz")
        lcr = lcr_analysis(lcr_entries[f"{dataset}/{model}"], samples, cfg)
        entry["lcr"] = lcr
        parts.append(study.lcr_table(lcr["variants"], lcr["coverage"]))
    else:
        parts.append(f"(No LCR code analysis: study 1 did not cover {dataset} / {model}.)")
    parts.append(study.reading(rows, shares, lcr))
    return entry, "\n\n".join(parts)


def main() -> None:
    params = load_params()
    cfg, quick = common.study_params(study.STUDY, study.Config, params)
    start = time.perf_counter()
    lcr_entries = read_json(LCR_JSON) if Path(LCR_JSON).is_file() else {}
    result = {}
    parts = [
        "## 5. Implicit-prompt robustness\n\n"
        "Explicit (forget test set captions) vs implicit-seen vs held-out implicit prompts, per "
        "method, read from the main pipeline's evaluation (nothing is rerun): mean ± 95% "
        "t-interval over repetitions; excess = minus D_r (paired per repetition); erased = share "
        "of the base model's excess over D_r that the method removes, 1 - (method - D_r) / "
        "(base - D_r). The LCR analysis uses study 1's base-model codes: the share of "
        "generated layer-0 tokens that are LCR-selected codes, and which toxic generations LCR "
        "can reach at all." + (" (studies.quick)" if quick else ""),
    ]
    for dataset in cfg.datasets:
        for model in cfg.models:
            result[f"{dataset}/{model}"], text = run_one(dataset, model, cfg, lcr_entries)
            parts.append(text)
    common.write_study(study.STUDY, result, parts, start)


if __name__ == "__main__":
    exits_on_bad_input(main)()
