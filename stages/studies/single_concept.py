"""Stage studies/single_concept: issue 14 item 2 (hmu.studies.single_concept).

Reads params.yaml `studies.single_concept` (and `studies.quick`), the main pipeline's base models
(models/<ds>/vq_all, <model>_all, res_all), its processed data and judge, and the settings of the
methods it reuses (trans/res/vq profile blocks, finetune, edit, uce, rece, lcr, generation).
Writes models/studies/single_concept/<ds>/<concept>/<method>/ (safetensors) and
metrics/studies/single_concept/{single_concept.json, section.md, specificity_<ds>_<model>.png}.
"""

import shutil
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.eval.instruments import load_detectors
from hmu.generate import generation_params
from hmu.io import write_json, write_text
from hmu.models.checkpoint import load_module, load_vq
from hmu.models.rvq import PAPER_CONFIG
from hmu.models.text import load_text_encoder
from hmu.params import load_params, profile_block, section
from hmu.params_schema import check_params
from hmu.studies import single_concept as study
from hmu.studies.common import study_params
from hmu.timings import record_timing, since
from hmu.train.runs import WORK_ROOT, digest

NAME = "single_concept"
OUT = Path("metrics/studies") / NAME
MODELS_OUT = Path("models/studies") / NAME
BLOCKS = ("profile", "trans", "res", "vq", "finetune", "edit", "uce", "rece", "lcr", "generation",
          "generator", "precision", "bamm")  # fmt: skip


def settings_of(params: dict) -> study.Settings:
    """The main pipeline's settings the study reuses."""
    gen = section(params, "generator")
    vq_model, vq_train = profile_block(params, "vq")
    return study.Settings(
        trans=profile_block(params, "trans"),
        res=profile_block(params, "res"),
        vq=({**PAPER_CONFIG, **vq_model}, vq_train),
        window=int(section(params, "vq.window")),
        **{k: section(params, k) for k in ("finetune", "edit", "uce", "rece", "lcr")},
        generation=generation_params(params),
        encoder_name=gen["text_encoder"],
        load_encoder=lambda: load_text_encoder(gen["text_encoder"], gen["clip_weights"]),
    )


def base_pieces(dataset: str, model: str) -> tuple:
    root = Path("models") / dataset
    vq, mean, std = load_vq(root / "vq_all")
    trans = load_module(root / f"{model}_all" / "trans.safetensors")
    return vq, mean, std, trans, load_module(root / "res_all" / "res.safetensors")


def section_md(cfg: study.Config, results: dict, quick: bool) -> str:
    concepts = "; ".join(
        f"{ds}: " + ", ".join(f"{c} ({', '.join(w)})" for c, w in cfg.concepts[ds].items())
        for ds in cfg.datasets
    )
    text = [
        "## 2. Single-concept unlearning\n",
        f"Forget one concept at a time and measure the calibrated toxic rate on its own explicit "
        f"prompts (target) and on the other concepts' prompts (collateral). Concepts (keywords): "
        f"{concepts}. Methods: {', '.join(study.LABELS[m] for m in cfg.methods)}, with the main "
        f"pipeline's settings. D_r^c: the transformers retrained from scratch on the training "
        f"motions that do not name the concept (steps x {cfg.steps_scale}), codebook "
        f"`{cfg.codebook}` (base: the base model's VQ-VAE, which the methods keep too; retrain: a "
        f"VQ-VAE trained on D_r^c). Prompts: test captions naming exactly one concept, at most "
        f"{cfg.max_prompts} per concept, {cfg.repetitions} repetitions; intervals are Student-t "
        f"95% over repetitions, differences paired per repetition."
        + (" **Quick run (studies.quick): numbers are not meaningful.**" if quick else "")
        + "\n",
    ]
    for ds, per_ds in results.items():
        counts = ", ".join(f"{c} {n}" for c, n in per_ds["prompts"].items())
        for model, per_concept in per_ds["models"].items():
            text += [
                f"### {ds} / {model}\n",
                f"Prompts per concept: {counts}. clf = classifier, kin = kinematic instrument.\n",
                study.specificity_table(per_concept),
                "Reading (classifier):\n",
                study.reading(per_concept),
                f"![specificity {ds} {model}](studies/{NAME}/specificity_{ds}_{model}.png)\n",
            ]
    return "\n".join(text)


def main() -> None:
    check_params(*BLOCKS)
    params = load_params()
    cfg, quick = study_params(NAME, study.Config, params)
    settings = settings_of(params)
    if quick:  # a smoke run: a few training steps, FT included
        cfg = study.shrink(cfg)
        settings.finetune = {**settings.finetune, "epochs": settings.finetune["epochs"] / 100}
    torch.set_num_threads(section(params, "generator.threads"))
    start = time.perf_counter()
    results = {}
    for dataset in cfg.datasets:
        data = ProcessedDataset.open(dataset)
        detectors = load_detectors(Path("models") / dataset / "evaluator")
        base = {m: base_pieces(dataset, m) for m in cfg.models}
        # resumable states keyed by every setting, so a changed run never resumes a stale one
        run_id = digest(cfg.model_dump(), quick, {k: params.get(k) for k in BLOCKS})
        work = WORK_ROOT / "studies" / NAME / dataset / run_id
        results[dataset] = study.run_dataset(
            data, cfg.models, base, cfg, settings, detectors, MODELS_OUT / dataset, work
        )
        shutil.rmtree(work, ignore_errors=True)
        for model, per_concept in results[dataset]["models"].items():
            study.plot_specificity(
                per_concept, OUT / f"specificity_{dataset}_{model}.png", f"{dataset} / {model}"
            )
    write_json(OUT / f"{NAME}.json", {"config": cfg.model_dump(), "quick": quick, **results})
    write_text(OUT / "section.md", section_md(cfg, results, quick))
    record_timing(f"studies/{NAME}", seconds=since(start))
    print(f"studies/{NAME}: {since(start):.0f} s")


if __name__ == "__main__":
    exits_on_bad_input(main)()
