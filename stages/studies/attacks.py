"""Stage attacks: study 6 of issue 14, robustness attacks on the unlearned models.

For each dataset and model of params `studies.attacks` (shrunk by `studies.quick`), loads the
main pipeline's generators (models/<ds>/<model>/<method>/method.json, base and D_r included),
the judge's two instruments (models/<ds>/evaluator), the processed data (captions, their
text embeddings, cached tokens), the dataset's toxic keywords (toxicity.<ds>.keywords: no
paraphrase may name one) and the embedded benchmark's ground-truth segments (wind-ups for
prefix completion), runs hmu.studies.attacks.run_study, and writes into
metrics/studies/attacks/: attacks.json (results, the prompts attacked and the adversarial
paraphrases found, per method),
adversarial_<ds>_<model>_<method>.npy (the embeddings found), the figures and section.md.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.groundtruth import load_groundtruth
from hmu.errors import exits_on_bad_input, read_json
from hmu.eval import action_classifier as ac
from hmu.eval.instruments import CLASSIFIER_FILE, kinematic_scores, load_detectors
from hmu.generate import load_generator
from hmu.io import write_json, write_npy, write_text
from hmu.params import load_params, section
from hmu.studies.attacks import Config, StudyInputs, run_study, windup_tokens
from hmu.studies.attacks_report import plot_figures, section_markdown
from hmu.timings import record_timing, since

OUT = Path("metrics/studies/attacks")


def _instruments(dataset: str, attack_with: str):
    """(verdicts, the attacking instrument's continuous score, the scoring verdict's name)."""
    folder = Path("models") / dataset / "evaluator"
    detectors = load_detectors(folder)
    if attack_with == "kinematic":
        return detectors, kinematic_scores, "toxic_rate"
    classifier = ac.load_action_classifier(folder / CLASSIFIER_FILE)
    return detectors, classifier.toxic_probability, "kinematic_rate"


def _codebook(dataset: str, model: str, method: str) -> str:
    """Whose VQ-VAE a method decodes with ("all" or "retain"), from its method.json."""
    spec = read_json(Path("models") / dataset / model / method / "method.json")
    name = Path(spec["vq"]).name
    if not name.startswith("vq_"):
        raise ValueError(f"models/{dataset}/{model}/{method}/method.json: vq {spec['vq']!r} is "
                         "not a pipeline VQ-VAE folder (vq_<subset>)")  # fmt: skip
    return name[3:]


def _prefixes(data, rows, captions_of_rows, raw_root, cfg: Config):
    """Toxic test motions with a ground-truth wind-up: (rows, wind-up tokens, caption rows)."""
    truth = load_groundtruth(raw_root)
    if truth is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    n_tokens = data.tokens("all").n_tokens
    keep, tokens, caps = [], [], []
    for row, motion_id, cap_rows in zip(rows, data.ids(rows), captions_of_rows, strict=True):
        if motion_id not in truth.index:
            continue
        windup = windup_tokens(truth.at[motion_id, "segments"], cfg.resurgence.min_prefix)
        if windup is not None and 0 < windup < n_tokens[row]:
            keep.append(row), tokens.append(windup), caps.append(cap_rows[0])
    limit = cfg.resurgence.max_motions
    return (np.asarray(keep[:limit], np.int64), np.asarray(tokens[:limit], np.int64),
            np.asarray(caps[:limit], np.int64))  # fmt: skip


def study_inputs(dataset: str, model: str, cfg: Config, params: dict) -> StudyInputs:
    """Everything run_study needs for one dataset and model, from the main pipeline's outputs."""
    data = ProcessedDataset.open(dataset)
    text_emb = data.text_emb()
    captions = data.captions["caption"].tolist()
    cache = (captions, text_emb)
    methods = ["base", *cfg.methods, cfg.reference]
    generators = {m: load_generator(dataset, model, m, text_cache=cache) for m in methods}
    names = {m: _codebook(dataset, model, m) for m in methods}
    tables = {name: data.tokens(name) for name in set(names.values())}
    codebooks = {m: tables[name] for m, name in names.items()}
    test = data.select("test", "forget")
    test_caps = data.caption_rows(test)
    first = np.array([c[0] for c in test_caps])[: cfg.prompts]
    lengths = np.array([min(len(m), 196) // 4 * 4 for m in data.motions(test[: cfg.prompts])])
    toxic = np.random.default_rng(cfg.seed).permutation(data.select("train", "forget"))
    prefix_rows, prefix_tokens, prefix_caps = _prefixes(
        data, test, test_caps, section(params, f"data.{dataset}.root"), cfg
    )
    detectors, objective, scorer = _instruments(dataset, cfg.attack.instrument)
    return StudyInputs(
        kind=model,
        generators=generators,
        codebooks=codebooks,
        prompts=[captions[i] for i in first],
        prompt_emb=text_emb[first],
        lengths=lengths,
        toxic_rows=toxic[: max(cfg.relearn.k)],
        retain_rows=data.select("train", "retain"),
        caption_rows=data.caption_rows,
        text_emb=text_emb,
        captions=captions,
        prefix_rows=prefix_rows,
        prefix_tokens=prefix_tokens,
        prefix_cond=text_emb[prefix_caps],
        detectors=detectors,
        objective=objective,
        scorer=scorer,
        precision=section(params, "precision.train"),
        keywords=tuple(section(params, f"toxicity.{dataset}.keywords")),
        concepts=tuple(cfg.paraphrase.concepts.get(dataset, ())),
    )


def write_report(summary: dict) -> None:
    """The figures and section.md of a study summary (attacks.json's content)."""
    figures = plot_figures(summary, OUT)
    write_text(OUT / "section.md", section_markdown(summary, figures))


def main(report_only: bool = False) -> None:
    """Run the study (or, with --report-only, redraw figures and section.md from
    attacks.json)."""
    if report_only:
        return write_report(read_json(OUT / "attacks.json"))
    params = load_params()
    studies = params.get("studies") or {}
    cfg = Config.from_params(studies.get("attacks"), quick=bool(studies.get("quick", False)))
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    results = {}
    for dataset in cfg.datasets:
        for model in cfg.models:
            begin = time.perf_counter()
            result, embeddings = run_study(study_inputs(dataset, model, cfg, params), cfg)
            results.setdefault(dataset, {})[model] = result
            for method, emb in embeddings.items():
                write_npy(OUT / f"adversarial_{dataset}_{model}_{method}.npy", emb)
            record_timing(f"studies/attacks_{dataset}_{model}", seconds=since(begin))
    summary = {"config": cfg.model_dump(), "results": results}
    write_json(OUT / "attacks.json", summary)
    write_report(summary)
    record_timing("studies/attacks", seconds=since(start))
    print(f"attacks: {since(start):.1f} s")


if __name__ == "__main__":
    exits_on_bad_input(main)(report_only="--report-only" in sys.argv[1:])
