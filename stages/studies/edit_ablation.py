"""Stage studies/edit_ablation: issue 14 item 3 (hmu.studies.edit_ablation).

Reads params.yaml `studies.edit_ablation` (and `studies.quick`), the main blocks edit, uce, rece
(HMU's setting), protocol and generation, the toxic keywords, the main pipeline's base and D_r
models and its judge. Builds every UCE/RECE variant in memory from the base model, evaluates the
forget and retain test sets, and writes metrics/studies/edit_ablation/{edit_ablation.json,
section.md, ablation_<ds>_<model>.png}.
"""

import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import BATCH, ProtocolConfig, TestSet, evaluate_set
from hmu.generate import generation_params, load_generator
from hmu.io import write_json, write_text
from hmu.models.text import load_text_encoder
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.studies import edit_ablation as study
from hmu.studies.common import study_params
from hmu.studies.single_concept import make_generator
from hmu.timings import record_timing, since
from hmu.unlearn.prompts import edit_embeddings, sampled_captions

NAME = "edit_ablation"
OUT = Path("metrics/studies") / NAME


def evaluate(generator, sets, judge, proto) -> dict:
    """{"forget": metrics, "retain": metrics} of one generator (stream restarted per set)."""
    out = {}
    for name, test in sets.items():
        generator.reseed(proto.seed)
        out[name] = evaluate_set(test, generator, judge, proto, progress=False)
    return out


def one_batch(test: TestSet) -> TestSet:
    """The first BATCH motions of a test set (studies.quick smoke runs)."""
    cut = slice(0, BATCH)
    detox = None if test.detoxified is None else test.detoxified[cut]
    return TestSet(test.name, test.motion_ids[cut], test.motions[cut], test.captions[cut], detox)


def run(dataset: str, model: str, cfg: study.Config, params: dict, quick: bool) -> list[dict]:
    """The table rows of one dataset and model: base, D_r, then every variant."""
    data = ProcessedDataset.open(dataset)
    judge_folder = Path("models") / dataset / "evaluator"
    judge = load_judge(judge_folder)
    sets = {s: test_set(data, s, judge_folder) for s in ("forget", "retain")}
    if quick:
        sets = {name: one_batch(test) for name, test in sets.items()}
    protocol = {**section(params, "protocol"), "repetitions": cfg.repetitions,
                "mm_replications": 2, "mm_batches": 1, "mm_repetitions": 1}  # fmt: skip
    proto = ProtocolConfig(**protocol).validate()
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    results = {
        name: evaluate(
            load_generator(dataset, model, method, seed=proto.seed, text_cache=cache),
            sets, judge, proto,
        )
        for name, method in (("base", "base"), ("D_r", "retrain"))
    }  # fmt: skip
    base = load_generator(dataset, model, "base", seed=proto.seed, text_cache=cache)
    gen = section(params, "generator")
    encoder = load_text_encoder(gen["text_encoder"], weights_path=gen["clip_weights"])
    edit = section(params, "edit")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    erase_texts = keywords + sampled_captions(data, "forget", edit["erase_captions"], edit["seed"])
    keep_texts = edit["preserve_words"] + sampled_captions(
        data, "retain", edit["preserve_captions"], edit["seed"]
    )
    points = study.setting_points(
        edit, section(params, "uce"), section(params, "rece"), cfg.authors
    )
    rows = [
        {"name": name, **study.summary_row(result, results["D_r"])}
        for name, result in results.items()
    ]
    for variant in study.variants(cfg, points):
        erase, target_emb, preserve = edit_embeddings(
            encoder, erase_texts, variant["target"], keep_texts
        )
        trans, res = study.edit_variant(base.transformer, base.residual, variant["method"],
                                        variant["params"], erase, target_emb, preserve)  # fmt: skip
        generator = make_generator(base.vq, base.mean, base.std, trans, res, cache,
                                   generation_params(params), gen["text_encoder"],
                                   seed=proto.seed)  # fmt: skip
        result = evaluate(generator, sets, judge, proto)
        rows.append({"name": study.label(variant), "variant": variant,
                     **study.summary_row(result, results["D_r"])})  # fmt: skip
    return rows


def section_md(cfg: study.Config, tables: dict, points_text: str, quick: bool) -> str:
    text = [
        "## 3. UCE and RECE target ablation\n",
        f"Every variant is built in memory from the base model. Targets: "
        f"{', '.join(repr(t) for t in cfg.targets)}; preserve scales: "
        f"{', '.join(f'{p:g}' for p in cfg.preserve_scales)}; "
        + ("full grid" if cfg.full_grid else "one factor at a time around each setting's point")
        + f". Settings: {points_text}. Explicit toxic rate on the forget test set (classifier and "
        f"kinematic instruments), excess over D_r paired per repetition, retain FID and R@1; "
        f"{cfg.repetitions} repetitions of the protocol, Student-t 95% intervals."
        + (" **Quick run (studies.quick): numbers are not meaningful.**" if quick else "")
        + "\n",
    ]
    for (dataset, model), rows in tables.items():
        text += [
            f"### {dataset} / {model}\n",
            study.ablation_table(rows),
            "Reading (classifier):\n",
            study.reading(rows),
            f"![edit ablation {dataset} {model}](studies/{NAME}/ablation_{dataset}_{model}.png)\n",
        ]
    return "\n".join(text)


def main() -> None:
    check_params("edit", "uce", "rece", "protocol", "generation", "generator", "precision", "bamm")
    params = load_params()
    cfg, quick = study_params(NAME, study.Config, params)
    check_params(*(f"toxicity.{ds}.keywords" for ds in cfg.datasets))
    if quick:
        cfg = study.shrink(cfg)
    torch.set_num_threads(section(params, "evaluator.threads"))
    start = time.perf_counter()
    tables = {}
    for dataset in cfg.datasets:
        for model in cfg.models:
            rows = run(dataset, model, cfg, params, quick)
            tables[(dataset, model)] = rows
            study.plot_ablation(
                rows, OUT / f"ablation_{dataset}_{model}.png", f"{dataset} / {model}"
            )
    points = study.setting_points(
        section(params, "edit"), section(params, "uce"), section(params, "rece"), cfg.authors
    )
    points_text = "; ".join(
        f"{s}: " + ", ".join(f"{k} {v!r}" for k, v in p["rece"].items()) for s, p in points.items()
    )
    write_json(
        OUT / f"{NAME}.json",
        {"config": cfg.model_dump(), "quick": quick, "points": points,
         "tables": {f"{d}/{m}": rows for (d, m), rows in tables.items()}},
    )  # fmt: skip
    write_text(OUT / "section.md", section_md(cfg, tables, points_text, quick))
    record_timing(f"studies/{NAME}", seconds=since(start))
    print(f"studies/{NAME}: {since(start):.0f} s")


if __name__ == "__main__":
    exits_on_bad_input(main)()
