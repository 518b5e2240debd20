"""Stage causal: study 4, causal intervention on the LCR-selected base-layer codes.

Reads params `studies.causal` (hmu.studies.causal.Config), `studies.quick`, the `lcr` keys of
the selection (r, rule, absent_guard, min_support) and `toxicity.<ds>.keywords` (explicit forget
prompts); loads the base generator of each (dataset, model), the judge's calibrated instruments,
the cached tokens and the test captions. Writes metrics/studies/causal/causal.json, one PNG per
(dataset, model) and section.md; the wall time goes to timings/studies/causal.json.
"""

import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.toxicity import match_keywords
from hmu.errors import exits_on_bad_input
from hmu.eval.instruments import load_detectors
from hmu.generate import load_generator
from hmu.params import load_params, processed_dir, section
from hmu.studies import causal as study
from hmu.studies.common import study_params, write_study

OUT = Path("metrics/studies/causal")
LCR_KEYS = ("r", "rule", "absent_guard", "min_support")


def prompts_of(data: ProcessedDataset, subset: str, keywords: list[str] | None):
    """(captions per motion, frames per motion) of a test set; with keywords only the captions
    that name one (explicit prompts), motions without any dropped."""
    rows = data.select("test", subset)
    caps = [list(c["caption"]) for c in data.captions_of(rows)]
    frames = data.store.table["length"].to_numpy()[rows]
    if keywords:
        caps = [[c for c in cs if match_keywords(c, keywords)] for cs in caps]
    keep = [i for i, cs in enumerate(caps) if cs]
    return [caps[i] for i in keep], frames[keep]


def run_model(cfg, dataset: str, model: str, lcr: dict, keywords, prompts: int) -> dict:
    """Both directions for one (dataset, model) over the repetitions."""
    data = ProcessedDataset.open(dataset)
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    gen = load_generator(dataset, model, "base", seed=cfg.seed, text_cache=cache)
    detectors = load_detectors(Path("models") / dataset / "evaluator")
    table = data.tokens("all")
    forget, retain = data.select("train", "forget"), data.select("train", "retain")
    tokens = table.tokens[..., 0]
    selected, pool = study.lcr_codes(tokens[forget], tokens[retain], table.nb_code, **lcr)
    codebook = gen.vq.quantizer.layers[0].codebook.detach().cpu().numpy()
    safe_of = study.nearest_safe(codebook, pool)
    sets = {"inject": prompts_of(data, "retain", None),
            "remove": prompts_of(data, "forget", keywords)}  # fmt: skip
    shares = {"inject": cfg.inject_shares, "remove": cfg.remove_shares}
    per_rep = {d: [] for d in study.DIRECTIONS}
    for rep in range(cfg.repetitions):
        rng = np.random.default_rng([cfg.seed, rep])
        for direction in study.DIRECTIONS:
            texts, lengths = study.prompt_sample(*sets[direction], prompts, rng)
            per_rep[direction].append(study.run_direction(
                gen, detectors, direction, texts, lengths, shares[direction], cfg.residual,
                selected, pool, safe_of, rng, seed=int(rng.integers(2**31))))  # fmt: skip
    result = {d: study.summarize_direction(per_rep[d], shares[d], d) for d in study.DIRECTIONS}
    result["selection"] = {"selected": selected.tolist(), "safe_pool": int(pool.size), **lcr}
    result["prompts"] = {d: min(prompts, len(sets[d][0])) for d in study.DIRECTIONS}
    return result


def section_md(cfg, results: dict, quick: bool) -> str:
    """The study's section of metrics/studies.md."""
    head = cfg.residual[0]
    lines = [
        "## 4. Causal intervention on the LCR-selected codes",
        "",
        f"Base model generations; layer-0 tokens edited at shares p (inject: {cfg.inject_shares}"
        f" of each retain prompt's tokens; remove: {cfg.remove_shares} of each explicit forget "
        f"prompt's selected-code tokens, each replaced by its nearest safe code); the control "
        f"edits the same number of positions with non-selected codes (injection: the same "
        f"positions, random safe codes; removal: other positions, their nearest safe code). "
        f"{cfg.repetitions} repetitions of up to {cfg.prompts} prompts; intervals are Student-t "
        f"over repetitions, p-values one-sided paired t tests (edited vs control). Residual "
        f"layers: `{head}` is the headline (re-sampled by the residual transformer from the "
        f"edited tokens, as the model would generate them); "
        + ("`keep` (the original residual codes, as LCR leaves them) is the sensitivity check. "
           if "keep" in cfg.residual and head != "keep" else "")
        + ("**Quick run: shrunk sizes, not a result.**" if quick else ""),
    ]  # fmt: skip
    for dataset, models in results.items():
        for model, result in models.items():
            sel = result["selection"]
            lines += [
                "",
                f"### {dataset} / {model}",
                "",
                f"{len(sel['selected'])} selected codes (r = {sel['r']}, min_support = "
                f"{sel['min_support']}), safe pool {sel['safe_pool']} codes; prompts per "
                f"repetition: {result['prompts']['inject']} retain, "
                f"{result['prompts']['remove']} explicit forget.",
                "",
                f"![causal {dataset} {model}](studies/causal/{dataset}_{model}.png)",
            ]
            for mode in cfg.residual:
                for direction in study.DIRECTIONS:
                    lines += ["", f"**{direction}, residual layers `{mode}`**", "",
                              study.direction_table(result[direction], mode), "",
                              study.reading(result[direction], mode, direction)]  # fmt: skip
            lines += ["", f"**Reading ({head})**: " + study.verdict(result, head)]
    return "\n".join(lines) + "\n"


def main() -> None:
    params = load_params()
    cfg, quick = study_params("causal", study.Config, params)
    lcr = {k: section(params, f"lcr.{k}") for k in LCR_KEYS}
    if quick:
        cfg = cfg.model_copy(update={"repetitions": 2, "prompts": min(cfg.prompts, 8)})
    torch.set_num_threads(int(section(params, "generator.threads")))
    start = time.perf_counter()
    results: dict = {}
    for dataset in cfg.datasets:
        keywords = section(params, f"toxicity.{dataset}.keywords")
        for model in cfg.models:
            result = run_model(cfg, dataset, model, lcr, keywords, cfg.prompts)
            results.setdefault(dataset, {})[model] = result
            study.plot_curves(result, OUT / f"{dataset}_{model}.png",
                              f"Causal intervention: {dataset} / {model}")  # fmt: skip
    result = {"config": cfg.model_dump(), "quick": quick, **results}
    write_study("causal", result, [section_md(cfg, results, quick).rstrip("\n")], start)


if __name__ == "__main__":
    exits_on_bad_input(main)()
