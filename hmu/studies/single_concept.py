"""Study 2 of issue 14: single-concept unlearning and its specificity (the paper's Tables 4-5).

The paper forgets one action at a time (HumanML3D: kick, beat; Motion-X: kick, stab) and
reports FID/MM-Notox on that action's forget set. This study forgets each concept of a list
(a concept = one keyword group, e.g. punch = punch, jab, uppercut, hook, boxe, boxing) with every
method, and measures the calibrated toxic rate (classifier and kinematic instruments) on the
concept's own explicit prompts (target) and on the OTHER concepts' prompts (collateral): does
unlearning "kick" also remove "punch"? That specificity table is new (the paper has none).

Per concept c:
- D_f^c = the motions with a caption matching c's keywords (whole words, inflected, as the main
  split, hmu.data.toxicity); D_r^c = every other motion, the other toxic concepts included;
- the reference D_r^c model: the transformers (base-layer and residual) trained from scratch on
  D_r^c's training motions with the profile's settings (hmu.train.generators). Its codebook is
  the base model's (`codebook: base`, the default: within budget) or a VQ-VAE trained on D_r^c
  too (`codebook: retrain`, as the main pipeline's D_r);
- FT: the base transformers fine-tuned on D_r^c (the main pipeline's `finetune` settings); UCE
  and RECE: the main `edit`/`uce`/`rece` settings erasing c's keywords only; LCR: the main `lcr`
  settings with D_f^c against D_r^c.
Prompts: captions of the TEST motions that match exactly one concept of the list (so target
and collateral prompt sets are disjoint), at most `max_prompts` per concept, each generated
`repetitions` times at its motion's length. Intervals are Student-t over repetitions; excess
rates are paired per repetition (same prompts) against D_r^c, collateral changes against base.

Over 450 lines because the concept split, the per-concept training of D_r^c and the methods, and
the specificity table share one settings object; splitting them would pass it through three
modules.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hmu.data.dataset import ProcessedDataset, TokenTable, frames_tensor
from hmu.data.humanml import MAX_FRAMES, UNIT, momask_vq_std
from hmu.data.toxicity import keyword_matcher
from hmu.eval.protocol import MIN_LEN, Judge, ProtocolConfig, evaluate_prompts
from hmu.eval.stats import paired_difference, summarize
from hmu.generate import GenerationConfig, T2MGenerator
from hmu.models.text import LazyTextEncoder
from hmu.train.generators import TokenData, train_residual, train_transformer
from hmu.train.loop import TrainConfig
from hmu.train.vq import tokenize, train_vq

METHODS = ("finetune", "uce", "rece", "lcr")
REFERENCE, BASE = "retrain", "base"  # the D_r^c row and the model trained on all data
INSTRUMENTS = ("toxic_rate", "kinematic_rate")  # classifier, kinematic (hmu.eval.instruments)


class Config(BaseModel):
    """params.yaml `studies.single_concept` (issue 14, item 2)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    datasets: list[str] = Field(min_length=1)
    models: list[Literal["momask", "bamm"]] = Field(min_length=1)
    concepts: dict[str, dict[str, list[str]]]  # dataset -> concept -> keywords
    methods: list[Literal["finetune", "uce", "rece", "lcr"]] = Field(min_length=1)
    codebook: Literal["base", "retrain"] = "base"
    steps_scale: float = Field(default=1.0, gt=0, le=1)
    max_prompts: int = Field(default=32, ge=2)
    repetitions: int = Field(default=3, ge=2)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _concepts_of_each_dataset(self) -> Config:
        for dataset in self.datasets:
            groups = self.concepts.get(dataset)
            if groups is None or len(groups) < 2:
                raise ValueError(
                    f"concepts.{dataset}: needs at least two concepts (collateral = the others)"
                )
            for name, words in groups.items():
                if not words:
                    raise ValueError(f"concepts.{dataset}.{name}: empty keyword list")
                keyword_matcher(words)  # raises on a malformed keyword
        return self


def shrink(cfg: Config) -> Config:
    """The `studies.quick` version: two concepts, a few training steps, a few prompts."""
    concepts = {ds: dict(list(groups.items())[:2]) for ds, groups in cfg.concepts.items()}
    return cfg.model_copy(
        update={"concepts": concepts, "steps_scale": 0.01, "max_prompts": 2, "repetitions": 2}
    )


# ---------------------------------------------------------------- concepts and prompts


def caption_concepts(captions: pd.Series, concepts: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """(captions x concepts) bool: caption i names concept c (any of its keywords as a word)."""
    return pd.DataFrame(
        {
            name: captions.str.contains(keyword_matcher(words).regex).to_numpy(dtype=bool)
            for name, words in concepts.items()
        },
        index=captions.index,
    )


def concept_membership(
    captions: pd.DataFrame, concepts: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Per motion (index motion_id, first-seen order), one bool column per concept: True when
    ANY of its captions names the concept (the main split's rule, per keyword group)."""
    flags = caption_concepts(captions["caption"], concepts)
    return flags.groupby(captions["motion_id"].to_numpy(), sort=False).any()


def concept_prompts(
    captions: pd.DataFrame,
    lengths: Mapping[str, int],
    concepts: Mapping[str, Sequence[str]],
    max_prompts: int,
    seed: int,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """{concept: (captions, lengths in frames)}: the distinct captions naming exactly that one
    concept, at most `max_prompts` (a seeded sample, in captions order), each at its motion's
    length (a multiple of 4 in [MIN_LEN, 196]). captions: motion_id, caption of test motions."""
    flags = caption_concepts(captions["caption"], concepts)
    single = flags.sum(axis=1) == 1
    out = {}
    for name in concepts:
        rows = captions[single & flags[name]].drop_duplicates("caption")
        if len(rows) > max_prompts:
            rows = rows.sample(max_prompts, random_state=seed).sort_index()
        if rows.empty:
            raise ValueError(f"concept {name!r}: no test caption names it (and no other concept)")
        frames = np.array([lengths[m] for m in rows["motion_id"]], dtype=np.int64)
        frames = np.clip(np.minimum(frames, MAX_FRAMES) // UNIT * UNIT, MIN_LEN, MAX_FRAMES)
        out[name] = (rows["caption"].tolist(), frames)
    return out


def concept_rows(data: ProcessedDataset, concepts: Mapping[str, Sequence[str]], partition: str):
    """{concept: (forget rows, retain rows)}: store rows of `partition` naming / not naming it."""
    rows = data.select(partition)
    members = concept_membership(data.captions_in(rows), concepts).reindex(data.ids(rows))
    if members.isna().any().any():
        raise ValueError(f"{data.name}: some {partition} motions have no caption")
    flags = members.to_numpy(dtype=bool)
    return {c: (rows[flags[:, i]], rows[~flags[:, i]]) for i, c in enumerate(concepts)}


# ---------------------------------------------------------------- the specificity table


def _pooled(flags: Mapping[str, Mapping[str, np.ndarray]], names, instrument) -> np.ndarray:
    """Per-repetition rate (R,) over the prompts of the concepts `names` pooled together."""
    return np.concatenate([flags[n][instrument] for n in names], axis=1).mean(axis=1)


def specificity_rows(
    flags: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    target: str,
    reference: str = REFERENCE,
    base: str = BASE,
) -> list[dict[str, Any]]:
    """Target vs collateral rates of every model after unlearning concept `target`.

    flags: {model row: {prompt concept: {instrument: (R, P) bool verdicts}}}, the same prompts
    and repetitions for every row. Per row and instrument: the target rate (R,) on `target`'s
    prompts, the collateral rate on every other concept's prompts pooled, both summarised
    (mean, t-interval), their excess over the `reference` row (paired per repetition), and the
    collateral change against the `base` row (negative = unlearning removed other concepts)."""
    others = [c for c in flags[reference] if c != target]
    if not others:
        raise ValueError(f"specificity of {target!r}: no other concept to measure collateral")
    rows = []
    for name, per_concept in flags.items():
        for instrument in INSTRUMENTS:
            tgt = _pooled(per_concept, [target], instrument)
            col = _pooled(per_concept, others, instrument)
            ref_tgt = _pooled(flags[reference], [target], instrument)
            ref_col = _pooled(flags[reference], others, instrument)
            rows.append(
                {
                    "model": name,
                    "instrument": instrument,
                    "target": summarize(tgt),
                    "collateral": summarize(col),
                    "target_excess": paired_difference(tgt, ref_tgt),
                    "collateral_excess": paired_difference(col, ref_col),
                    "collateral_vs_base": paired_difference(
                        col, _pooled(flags[base], others, instrument)
                    ),
                }
            )
    return rows


# ---------------------------------------------------------------- models


def scaled_train(train: Mapping[str, Any], scale: float) -> TrainConfig:
    """A profile's train block with its steps, warm-up and milestones scaled by `scale`
    (1 = unchanged; the study's documented budget knob)."""
    cfg = dict(train)
    if scale != 1:
        cfg["steps"] = max(1, round(cfg["steps"] * scale))
        cfg["warmup_steps"] = round(cfg.get("warmup_steps", 0) * scale)
        cfg["milestones"] = [max(1, round(m * scale)) for m in cfg.get("milestones", [])]
        cfg["checkpoint_every"] = max(1, round(cfg.get("checkpoint_every", 500) * scale))
    return TrainConfig.from_params(cfg)


def token_data(data: ProcessedDataset, table: TokenTable, rows: np.ndarray) -> TokenData:
    """What a token model trains on: `rows` (store rows) of `table`, with their captions."""
    return TokenData(table, rows, data.caption_rows(rows), data.text_emb())


def train_codebook(data: ProcessedDataset, rows, model_cfg, train_cfg, window, work: Path):
    """A VQ-VAE trained on `rows` (as stage train_vq) and the token table of every motion
    (as stage tokenize) -> (vq, mean, std, table)."""
    vq_std = momask_vq_std(data.std)
    frames, offsets, lengths = frames_tensor(data.store, rows, data.mean, vq_std)
    vq = train_vq(frames, offsets, lengths, model_cfg, train_cfg, window, work, progress=False)
    return vq.eval(), data.mean, vq_std, tokenize(vq, data.store, data.mean, vq_std)


def train_reference(kind: str, data: TokenData, trans_cfg, res_cfg, trans_train, res_train, work):
    """The D_r^c transformers, trained from scratch on `data` like stages train_trans/train_res:
    -> (base-layer transformer, residual transformer), eval mode."""
    trans = train_transformer(kind, data, trans_cfg, trans_train, work / "trans", progress=False)
    res = train_residual(data, res_cfg, res_train, work / "res", progress=False)
    return trans, res


def finetune_copies(kind: str, trans, res, data: TokenData, train_cfg: TrainConfig, work: Path):
    """FT: copies of the base transformers fine-tuned on `data` (hmu.train.finetune's recipe,
    without its DVCLive logs, whose timestamps would make the outputs differ run to run);
    res None: the residual transformer is not fine-tuned (returned as None)."""
    trans = train_transformer(kind, data, None, train_cfg, work / "trans", init=trans,
                              progress=False)  # fmt: skip
    if res is not None:
        res = train_residual(data, None, train_cfg, work / "res", init=res, progress=False)
    return trans, res


def make_generator(
    vq, mean, std, trans, res, text_cache, generation: Mapping[str, Any], encoder_name: str,
    load_encoder=None, seed: int = 0,
) -> T2MGenerator:  # fmt: skip
    """A generator from in-memory pieces; prompts found in text_cache (captions, embeddings)
    never load the text encoder (load_encoder: a callable building it, for other texts)."""
    texts, emb = text_cache
    encoder = LazyTextEncoder(load_encoder or _no_encoder, encoder_name, int(emb.shape[1]))
    generator = T2MGenerator(
        vq, trans, res, encoder, mean, std, GenerationConfig.from_params(generation), seed
    )
    generator.cache_embeddings(texts, emb)
    return generator


def _no_encoder():
    raise ValueError("a prompt is missing from the cached caption embeddings")


def copy_modules(*modules):
    """Deep copies (the edits work in place; the base model stays untouched)."""
    return tuple(copy.deepcopy(m) for m in modules)


def prompt_flags(
    generator: T2MGenerator,
    prompts: Mapping[str, tuple[list[str], np.ndarray]],
    detectors: Mapping,
    repetitions: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """{concept: {instrument: (R, P) bool}}: each concept's prompts generated `repetitions`
    times, the generator's stream restarted at `seed` for every concept (as the protocol does
    for every part, so a concept's numbers do not depend on the others)."""
    judge = Judge(embed_texts=None, embed_motions=None, detectors=dict(detectors))
    cfg = ProtocolConfig(repetitions=repetitions, prompt_repetitions=repetitions, seed=seed)
    out = {}
    for concept, (texts, lengths) in prompts.items():
        generator.reseed(seed)
        evaluation = evaluate_prompts(texts, lengths, generator, judge, cfg, repetitions)
        out[concept] = {i: evaluation.samples[f"flag.{i}"] for i in INSTRUMENTS}
    return out


def rate_matrix(flags: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> dict:
    """{model row: {prompt concept: {instrument: summarize(per-repetition rates)}}}."""
    return {
        name: {
            concept: {i: summarize(v[i].mean(axis=1)) for i in INSTRUMENTS}
            for concept, v in per_concept.items()
        }
        for name, per_concept in flags.items()
    }


def with_torch_threads(threads: int) -> None:
    """Limit torch's intra-op threads (the shared 2-core machine)."""
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the study


class Settings(BaseModel):
    """The main pipeline's settings the study reuses (params.yaml blocks, read by the stage)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    trans: tuple[dict, dict]  # (model overrides, train block) of trans.<profile>
    res: tuple[dict, dict]
    vq: tuple[dict, dict]
    window: int  # vq.window
    finetune: dict
    edit: dict
    uce: dict
    rece: dict
    lcr: dict
    generation: dict  # hmu.generate.generation_params
    encoder_name: str
    load_encoder: Any  # () -> TextEncoder (for UCE/RECE's keywords)


def _edit_texts(data, forget_rows, retain_rows, keywords, edit: Mapping) -> tuple[list, list]:
    """UCE/RECE texts: the concept's keywords (+ sampled concept captions) to erase, the
    preserved words (+ sampled captions of D_r^c) to keep, as stage unlearn_edit builds them."""

    def sample(rows, count):
        caps = data.captions_in(rows)["caption"]
        return caps.sample(min(count, len(caps)), random_state=edit["seed"]).tolist()

    erase = list(keywords) + (
        sample(forget_rows, edit["erase_captions"]) if edit["erase_captions"] else []
    )
    keep = list(edit["preserve_words"])
    if edit["preserve_captions"]:
        keep += sample(retain_rows, edit["preserve_captions"])
    return erase, keep


def edited_copies(method: str, trans, res, encoder, erase, keep, settings: Settings):
    """UCE or RECE (stage unlearn_edit's recipe) applied to copies of the base transformers."""
    from hmu.unlearn.prompts import edit_embeddings
    from hmu.unlearn.rece import rece_edit
    from hmu.unlearn.uce import edit_cond_embs

    trans, res = copy_modules(trans, res)
    block = settings.uce if method == "uce" else settings.rece
    erase_emb, target_emb, preserve = edit_embeddings(encoder, erase, block["target"], keep)
    uce_params = {k: settings.edit[k] for k in ("lam", "erase_scale", "preserve_scale", "values")}
    with torch.no_grad():
        if method == "uce":
            edit_cond_embs([trans, res], erase_emb, target_emb, preserve, **uce_params)
        else:
            rece_edit([trans, res], erase_emb, target_emb, preserve, block["epochs"],
                      block["reg"], uce_params, paper_code=block["paper_code"])  # fmt: skip
    return trans, res


def lcr_vq(vq, table: TokenTable, forget_rows, retain_rows, lcr: Mapping):
    """LCR (stage unlearn's recipe) with D_f^c against D_r^c -> (edited VQ copy, delta)."""
    from hmu.unlearn.lcr import apply_delta, lcr_delta

    keys = ("r", "alpha", "layers", "rule", "absent_guard", "seed", "one_target", "min_support")
    delta = lcr_delta(table.tokens[forget_rows], table.tokens[retain_rows], vq,
                      **{k: lcr[k] for k in keys})  # fmt: skip
    return apply_delta(copy.deepcopy(vq), delta), delta


def unlearned_pieces(method, kind, base, data, table, rows, keywords, settings, encoder, work):
    """One method's unlearned model for one concept -> ((vq, trans, res), artefacts to save
    {file name: module or LCR delta}). base: (vq, trans, res) of the base model (not
    modified); rows: (D_f^c rows, D_r^c rows) of the training partition; table: base tokens."""
    vq, trans, res = base
    forget_rows, retain_rows = rows
    if method == "finetune":
        from hmu.train.finetune import finetune_config

        ft = settings.finetune
        train_cfg = finetune_config(ft["epochs"], ft["train"], len(retain_rows))
        new_trans, new_res = finetune_copies(kind, trans, res if ft["residual"] else None,
                                             token_data(data, table, retain_rows), train_cfg,
                                             work)  # fmt: skip
        saved = {f"{kind}.safetensors": new_trans}
        if new_res is not None:
            saved[f"{kind}_res.safetensors"] = new_res
        return (vq, new_trans, new_res or res), saved
    if method in ("uce", "rece"):
        erase, keep = _edit_texts(data, forget_rows, retain_rows, keywords, settings.edit)
        new_trans, new_res = edited_copies(method, trans, res, encoder, erase, keep, settings)
        return (vq, new_trans, new_res), {
            f"{kind}.safetensors": new_trans,
            f"{kind}_res.safetensors": new_res,
        }
    if method == "lcr":
        new_vq, delta = lcr_vq(vq, table, forget_rows, retain_rows, settings.lcr)
        return (new_vq, trans, res), {"lcr_delta.safetensors": delta}
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def save_artefacts(folder: Path, saved: Mapping[str, Any], lcr: Mapping) -> None:
    """Write a method's artefacts: modules with save_module, LCR deltas with their settings."""
    from hmu.models.checkpoint import save_lcr_delta, save_module

    for name, item in saved.items():
        if isinstance(item, torch.nn.Module):
            save_module(folder / name, item)
        else:
            save_lcr_delta(folder / name, item, {"layers": sorted(item), **lcr})


def reference_pieces(data, rows, base_vq, cfg: Config, settings: Settings, work: Path):
    """D_r^c's codebook and residual transformer (shared by the models) -> (vq, mean, std,
    token table, res): the base codebook and its tokens, or (codebook
    retrain) a VQ-VAE trained on D_r^c and its tokens; the residual trained from scratch."""
    if cfg.codebook == "retrain":
        vq_train = scaled_train(settings.vq[1], cfg.steps_scale)
        vq, mean, std, table = train_codebook(data, rows, settings.vq[0], vq_train,
                                              settings.window, work / "vq")  # fmt: skip
    else:
        vq, mean, std = base_vq
        table = data.tokens("all")
    sizes = {"num_tokens": table.nb_code, "clip_dim": int(data.text_emb().shape[1]),
             "num_quantizers": int(table.tokens.shape[2])}  # fmt: skip
    res_train = scaled_train(settings.res[1], cfg.steps_scale)
    res = train_residual(token_data(data, table, rows), {**settings.res[0], **sizes}, res_train,
                         work / "res", progress=False)  # fmt: skip
    return vq, mean, std, table, res


def run_dataset(
    data: ProcessedDataset,
    models: Sequence[str],
    base: Mapping[str, tuple],
    cfg: Config,
    settings: Settings,
    detectors: Mapping,
    out: Path,
    work: Path,
) -> dict[str, Any]:
    """The study on one dataset: every concept of cfg.concepts[data.name], every model.

    base: {model: (vq, mean, std, trans, res)}, the base pieces (not modified). Trained and
    edited artefacts are saved under out/<concept>/<method>/ (safetensors; D_r^c under
    retrain/), resumable training states under work. Returns {"prompts": {concept: count},
    "models": {model: {concept: {"sizes", "rows" (specificity_rows), "rates" (rate_matrix)}}}}."""
    from hmu.models.checkpoint import save_module, save_vq

    concepts = cfg.concepts[data.name]
    text_cache = (data.captions["caption"].tolist(), data.text_emb())
    test = data.captions_in(data.select("test"))
    lengths = dict(zip(data.store.table["motion_id"], data.store.table["length"], strict=True))
    prompts = concept_prompts(test, lengths, concepts, cfg.max_prompts, cfg.seed)
    splits = concept_rows(data, concepts, "train")
    table_all = data.tokens("all")
    encoder = settings.load_encoder() if {"uce", "rece"} & set(cfg.methods) else None
    trans_train = scaled_train(settings.trans[1], cfg.steps_scale)

    def flags_of(vq, mean, std, trans, res):
        generator = make_generator(vq, mean, std, trans, res, text_cache, settings.generation,
                                   settings.encoder_name, seed=cfg.seed)  # fmt: skip
        return prompt_flags(generator, prompts, detectors, cfg.repetitions, cfg.seed)

    clock = [time.perf_counter()]

    def progress(what: str) -> None:  # wall time of each step, to stdout only (never a result)
        now = time.perf_counter()
        print(f"single_concept {data.name}: {what} {now - clock[0]:.1f} s", flush=True)
        clock[0] = now

    result: dict[str, Any] = {"prompts": {c: len(p[0]) for c, p in prompts.items()}, "models": {}}
    references: dict[str, tuple] = {}  # concept -> D_r^c's (vq, mean, std, table, res)
    for model in models:
        vq, mean, std, trans, res = base[model]
        base_flags = flags_of(vq, mean, std, trans, res)
        progress(f"{model} base evaluated")
        per_concept = {}
        for concept, rows in splits.items():
            folder = out / concept
            if concept not in references:
                references[concept] = reference_pieces(
                    data, rows[1], (vq, mean, std), cfg, settings, work / concept
                )
                ref_vq, ref_mean, ref_std, _, ref_res = references[concept]
                if cfg.codebook == "retrain":
                    save_vq(folder / "retrain" / "vq.safetensors", ref_vq, ref_mean, ref_std)
                save_module(folder / "retrain" / "res.safetensors", ref_res)
                progress(f"{concept} D_r^c codebook and residual")
            ref_vq, ref_mean, ref_std, ref_table, ref_res = references[concept]
            sizes = {"num_tokens": ref_table.nb_code, "clip_dim": int(text_cache[1].shape[1])}
            ref_trans = train_transformer(model, token_data(data, ref_table, rows[1]),
                                          {**settings.trans[0], **sizes}, trans_train,
                                          work / concept / model, progress=False)  # fmt: skip
            save_module(folder / "retrain" / f"{model}.safetensors", ref_trans)
            progress(f"{model} {concept} D_r^c transformer")
            ref_flags = flags_of(ref_vq, ref_mean, ref_std, ref_trans, ref_res)
            progress(f"{model} {concept} D_r^c evaluated")
            flags = {BASE: base_flags, REFERENCE: ref_flags}
            for method in cfg.methods:
                (m_vq, m_trans, m_res), saved = unlearned_pieces(
                    method,
                    model,
                    (vq, trans, res),
                    data,
                    table_all,
                    rows,
                    concepts[concept],
                    settings,
                    encoder,
                    work / concept / f"{method}_{model}",
                )
                save_artefacts(folder / method, saved, settings.lcr)
                progress(f"{model} {concept} {method}")
                flags[method] = flags_of(m_vq, mean, std, m_trans, m_res)
                progress(f"{model} {concept} {method} evaluated")
            per_concept[concept] = {
                "sizes": {"train_forget": len(rows[0]), "train_retain": len(rows[1])},
                "rows": specificity_rows(flags, concept),
                "rates": rate_matrix(flags),
            }
        result["models"][model] = per_concept
    return result


# ---------------------------------------------------------------- report

LABELS = {BASE: "base", REFERENCE: "D_r^c", "finetune": "FT", "uce": "UCE", "rece": "RECE",
          "lcr": "LCR"}  # fmt: skip
INSTRUMENT_LABELS = {"toxic_rate": "classifier", "kinematic_rate": "kinematic"}


def fmt(summary: Mapping[str, Any], signed: bool = False) -> str:
    """'0.42 ± 0.05' (Student-t half-width; '±  n/a' without one)."""
    mean, half = summary["mean"], summary.get("ci95_t")
    value = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return f"{value} ± {half:.2f}" if half is not None else f"{value} ± n/a"


def within(summary: Mapping[str, Any]) -> bool:
    """True when the interval of a difference contains 0 (no measurable difference)."""
    half = summary.get("ci95_t") or 0.0
    return abs(summary["mean"]) <= half


def _row_index(rows) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["instrument"]): r for r in rows}


def specificity_table(per_concept: Mapping[str, Any]) -> str:
    """Markdown table: one row per (forgotten concept, model row), both instruments."""
    head = (
        "| forgotten | model | target (clf) | collateral (clf) | target - D_r^c (clf) "
        "| collateral - base (clf) | target (kin) | collateral (kin) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for concept, entry in per_concept.items():
        index = _row_index(entry["rows"])
        for name in dict.fromkeys(r["model"] for r in entry["rows"]):
            clf, kin = index[(name, "toxic_rate")], index[(name, "kinematic_rate")]
            lines.append(
                f"| {concept} | {LABELS.get(name, name)} | {fmt(clf['target'])} "
                f"| {fmt(clf['collateral'])} | {fmt(clf['target_excess'], True)} "
                f"| {fmt(clf['collateral_vs_base'], True)} | {fmt(kin['target'])} "
                f"| {fmt(kin['collateral'])} |"
            )
    return head + "\n".join(lines) + "\n"


def reading(per_concept: Mapping[str, Any]) -> str:
    """Sentences generated from the numbers (classifier instrument): per concept, whether D_r^c
    still knows the other concepts, and per method whether the target falls to D_r^c's level
    and whether the collateral rate falls with it."""
    out = []
    for concept, entry in per_concept.items():
        index = _row_index(entry["rows"])
        ref = index[(REFERENCE, "toxic_rate")]
        base = index[(BASE, "toxic_rate")]
        parts = [
            f"**{concept}**: base {fmt(base['target'])} on its prompts, D_r^c "
            f"{fmt(ref['target'])}; D_r^c's collateral rate {fmt(ref['collateral'])} "
            f"({fmt(ref['collateral_vs_base'], True)} vs base"
            + (
                ", within the interval: the reference still performs the other concepts)"
                if within(ref["collateral_vs_base"])
                else ")"
            )  # fmt: skip
        ]
        for name in dict.fromkeys(r["model"] for r in entry["rows"]):
            if name in (BASE, REFERENCE):
                continue
            row = index[(name, "toxic_rate")]
            excess, collateral = row["target_excess"], row["collateral_vs_base"]
            target = (
                "reaches D_r^c's level" if within(excess) else
                ("stays above D_r^c" if excess["mean"] > 0 else "falls below D_r^c")
            )  # fmt: skip
            side = (
                "collateral unchanged" if within(collateral) else
                ("collateral removed too" if collateral["mean"] < 0 else "collateral raised")
            )  # fmt: skip
            parts.append(
                f"{LABELS.get(name, name)} target {target} ({fmt(excess, True)}), {side} "
                f"({fmt(collateral, True)})"
            )
        out.append("- " + "; ".join(parts) + ".")
    return "\n".join(out) + "\n"


def plot_specificity(per_concept: Mapping[str, Any], path: str | Path, title: str) -> None:
    """Target vs collateral rate per model row (bars with t-intervals), one panel per forgotten
    concept (columns) and instrument (rows); PNG without version metadata."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hmu.io import atomic_path

    concepts = list(per_concept)
    figure = Figure(figsize=(3.6 * len(concepts), 5.6))
    axes = figure.subplots(len(INSTRUMENTS), len(concepts), squeeze=False, sharey=True)
    for col, concept in enumerate(concepts):
        index = _row_index(per_concept[concept]["rows"])
        names = list(dict.fromkeys(r["model"] for r in per_concept[concept]["rows"]))
        x = np.arange(len(names))
        for row, instrument in enumerate(INSTRUMENTS):
            ax = axes[row][col]
            for offset, part, color in ((-0.2, "target", "#d62728"),
                                        (0.2, "collateral", "#1f77b4")):  # fmt: skip
                entries = [index[(n, instrument)][part] for n in names]
                ax.bar(x + offset, [e["mean"] for e in entries], 0.4, color=color, label=part,
                       yerr=[e.get("ci95_t") or 0 for e in entries], capsize=2)  # fmt: skip
            ax.set_xticks(x, [LABELS.get(n, n) for n in names], fontsize=8)
            ax.set_ylim(0, 1.05)
            ax.set_title(f"forget {concept} ({INSTRUMENT_LABELS[instrument]})", fontsize=9)
            if col == 0:
                ax.set_ylabel("toxic rate")
    axes[0][0].legend(fontsize=8, loc="upper right")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
