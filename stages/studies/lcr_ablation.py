"""Stage studies_lcr_ablation (studies/dvc.yaml): study 1 of issue 14, the LCR ablation.

For each dataset and model of `studies.lcr_ablation`: the base model's codes are sampled once
(main protocol, fewer repetitions if asked) and decoded with every LCR variant's codebooks,
built in memory from data/processed/<ds>/tokens_all.npz (no model folder is written).
Writes metrics/studies/lcr_ablation/ (lcr_ablation.json, <ds>-<model>_*.png, section.md) and
the per-sample codes and flags to eval/studies/lcr_ablation/<ds>-<model>.npz (study 5 reads them).
"""

import time

import numpy as np

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.judge import test_set
from hmu.eval.run import prompt_sets, save_samples
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.studies import common
from hmu.studies import lcr_ablation as study
from hmu.timings import since

OUT = common.study_dir(study.STUDY)
SAMPLES = common.SAMPLES_DIR / study.STUDY


def _reproduction_check(rows: dict, main_lcr: dict, reps: int, where: str) -> str:
    """How far the default row is from the main pipeline's LCR evaluation (same protocol)."""
    gaps = [
        np.abs(
            np.subtract(
                rows[study.DEFAULT]["toxic"][part][name]["values"],
                main_lcr[part][name]["values"][
                    : len(rows[study.DEFAULT]["toxic"][part][name]["values"])
                ],
            )
        ).max()
        for part in study.TOXIC_PARTS
        for name in common.INSTRUMENTS
    ]
    verdict = "reproduces" if max(gaps) < 1e-9 else "does NOT exactly reproduce"
    return (f"Check: the default row {verdict} the main pipeline's LCR evaluation "
            f"(metrics/{where}/lcr.json, first {reps} repetitions): its per-repetition toxic "
            f"rates differ by at most {max(gaps):.3f}.")  # fmt: skip


def run_one(dataset: str, model: str, cfg, params: dict, threads: int) -> tuple[dict, str]:
    """The ablation of one (dataset, model): its JSON entry and its markdown section part."""
    where, tag = f"{dataset}/{model}", f"{dataset}-{model}"
    proto = common.protocol_config(
        params, repetitions=cfg.repetitions, prompt_repetitions=cfg.prompt_repetitions
    )
    main = params["protocol"]
    if cfg.repetitions > main["repetitions"] or cfg.prompt_repetitions > main["prompt_repetitions"]:
        raise ValueError(
            f"params.yaml: studies.lcr_ablation repetitions ({cfg.repetitions}, "
            f"{cfg.prompt_repetitions}) exceed the main protocol's ({main['repetitions']}, "
            f"{main['prompt_repetitions']}): D_r's values pair with the first repetitions only"
        )
    reference = common.main_result(dataset, model, common.REFERENCE)
    main_lcr = common.main_result(dataset, model, "lcr")
    generator, judge = common.load_method(dataset, model, "base", proto.seed, threads)
    data = ProcessedDataset.open(dataset)
    folder = common.judge_folder(dataset)
    tests = {part: test_set(data, part, folder) for part in ("forget", "retain")}
    tokens = data.tokens("all").tokens
    train_tokens = (tokens[data.select("train", "forget")], tokens[data.select("train", "retain")])
    default = dict(section(params, "lcr"))
    sweeps = study.layer_lists(cfg.sweeps.model_dump(), tokens.shape[2])
    named = study.variants(default, sweeps, cfg.grid)
    replay = common.CodeReplay(generator)
    start = time.perf_counter()

    def log(name: str, row: dict) -> None:
        rates = " ".join(f"{row['toxic'][p]['toxic_rate']['mean']:.2f}" for p in study.TOXIC_PARTS)
        print(f"{tag} {name}: toxic explicit/seen/held-out {rates}, retain FID "
              f"{row['retain_fid']['mean']:.2f} ({since(start):.0f} s)", flush=True)  # fmt: skip

    rows, codes, flags = study.run(
        replay, judge, tests, prompt_sets(dataset), proto, train_tokens, named, reference, log
    )
    paired = study.paired_to_default(rows)
    nb_code = generator.vq.hparams["nb_code"]
    entry = {
        "protocol": {
            "repetitions": proto.repetitions,
            "prompt_repetitions": proto.prompt_repetitions,
            "seed": proto.seed,
        },  # fmt: skip
        "default": default,
        "rows": rows,
        "paired_to_default": paired,
        "code_usage": {part: study.code_usage(c, nb_code).tolist() for part, c in codes.items()},
    }
    names = list(rows)
    arrays = {"variants": np.array(names)}
    arrays |= {f"codes.{part}": c.astype(np.int16) for part, c in codes.items()}
    for part in study.PARTS:
        for name in common.INSTRUMENTS:
            arrays[f"flags.{part}.{name}"] = np.stack([flags[v][part][name] for v in names])
    save_samples(SAMPLES / f"{tag}.npz", arrays)
    scatter, lines = study.figures(rows, default, reference, proto.repetitions)
    common.save_figure(scatter, OUT / f"{tag}_toxic_vs_fid.png")
    common.save_figure(lines, OUT / f"{tag}_toxic_vs_r.png")
    check = _reproduction_check(rows, main_lcr, proto.repetitions, where)
    text = "\n\n".join([
        f"### {dataset} / {model}",
        study.table(rows, reference, proto.repetitions),
        f"![toxic rate vs retain FID](studies/{study.STUDY}/{tag}_toxic_vs_fid.png)\n"
        f"![toxic rate vs r](studies/{study.STUDY}/{tag}_toxic_vs_r.png)",
        study.reading(rows, paired, default, check),
    ])  # fmt: skip
    return entry, text


def header(cfg, quick: bool, params: dict) -> str:
    return "\n".join([
        "## 1. LCR ablation\n",
        "Latent Code Replacement (LCR), one factor at a time around the default `lcr:` block "
        f"({', '.join(f'{k}={v}' for k, v in section(params, 'lcr').items())})"
        + (f", plus the full {' x '.join(cfg.grid)} grid" if cfg.grid else "")
        + ". LCR is training-free and edits only VQ "
        "codebooks, which the transformers never read: the base model's codes are sampled once "
        "and decoded with each variant's codebooks, so all rows share the same codes, prompts "
        "and crops and compare pairwise. Protocol: the main one with "
        f"{cfg.repetitions} repetitions of the forget/retain test sets and "
        f"{cfg.prompt_repetitions} passes over the implicit prompt lists"
        + (" (studies.quick: shrunk)" if quick else "")
        + ". Cells: mean ± 95% t-interval over repetitions; clf = classifier, kin = kinematic "
        "instrument; excess = minus D_r, paired per repetition; selected share = share of the "
        "generated layer-0 tokens that are the variant's selected layer-0 codes.",
    ])  # fmt: skip


def main() -> None:
    check_params("protocol", "generation", "generator", "evaluator", "precision", "bamm", "lcr")
    params = load_params()
    cfg, quick = common.study_params(study.STUDY, study.Config, params)
    cfg = cfg.shrunk() if quick else cfg
    threads = section(params, "evaluator.threads")
    start = time.perf_counter()
    result, parts = {}, [header(cfg, quick, params)]
    for dataset in cfg.datasets:
        for model in cfg.models:
            result[f"{dataset}/{model}"], text = run_one(dataset, model, cfg, params, threads)
            parts.append(text)
    common.write_study(study.STUDY, result, parts, start)


if __name__ == "__main__":
    exits_on_bad_input(main)()
