"""Stage collateral: study 7, collateral damage and smoothness per unlearning method.

Reads params `studies.collateral` (hmu.studies.collateral.Config), `studies.quick`,
`toxicity.<ds>.keywords` (explicit forget prompts) and `data.<ds>.root` (the ground-truth
segments of the embedded benchmark); loads each method's generator, the judge (evaluator and
calibrated instruments) and the real motions. Writes metrics/studies/collateral/collateral.json,
a PNG per (dataset, model) and section.md; the wall time goes to timings/studies/collateral.json.
"""

import time
from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.groundtruth import load_groundtruth
from hmu.data.toxicity import match_keywords
from hmu.errors import exits_on_bad_input
from hmu.eval import stats
from hmu.eval.instruments import pad
from hmu.eval.judge import load_judge
from hmu.generate import load_generator
from hmu.methods import method_label
from hmu.models.text import load_text_encoder
from hmu.params import load_params, processed_dir, section
from hmu.studies import collateral as study
from hmu.studies.common import save_figure, study_params, write_study

OUT = Path("metrics/studies/collateral")
HEADLINE = ("near", "composition.with", "composition.without", "jerk.retain", "jerk.forget")
WORSE = {
    "near": "up",
    "composition.with": "up",
    "composition.without": "up",
    "jerk.retain": "down",
    "jerk.forget": "down",
}  # fmt: skip  goal of the better value


def real_reference(data, gt, judge, window: int, partition: str):
    """(embeddings, labels) of the ground-truth segments of a partition's real motions."""
    rows = data.select(partition)
    clips, labels = [], []
    for motion, mid in zip(data.motions(rows), data.ids(rows), strict=True):
        c, l = study.segment_windows(motion, gt.loc[mid, "segments"], window)
        clips += c
        labels += l
    parts = []
    for s in range(0, len(clips), 512):
        batch, lengths = pad(clips[s : s + 512])
        parts.append(judge.embed_motions(batch, lengths // 4 * 4))
    return np.concatenate(parts), np.array(labels)


def typical_frames(data, gt) -> dict[str, float]:
    """Median ground-truth segment length (frames) of every action in the training motions."""
    lengths: dict[str, list[int]] = {}
    for mid in data.ids(data.select("train")):
        for seg in gt.loc[mid, "segments"]:
            lengths.setdefault(seg["action"], []).append(int(seg["end"]) - int(seg["start"]))
    return {a: float(np.median(v)) for a, v in lengths.items()}


def test_prompts(data, subset: str, keywords, count: int, rng):
    """(prompts, lengths, real motions) of `count` test motions of a set (explicit captions for
    the forget set), one random caption each, lengths whole tokens in [40, 196] frames."""
    rows = data.select("test", subset)
    caps = [list(c["caption"]) for c in data.captions_of(rows)]
    if subset == "forget":
        caps = [[c for c in cs if match_keywords(c, keywords)] for cs in caps]
    keep = np.array([i for i, cs in enumerate(caps) if cs])
    order = rng.permutation(keep)[:count]
    motions = data.motions(rows[order])
    lengths = np.array([np.clip(len(m), 40, 196) // 4 * 4 for m in motions], dtype=np.int64)
    lengths = np.minimum(lengths, [len(m) // 4 * 4 for m in motions])
    texts = [caps[i][rng.integers(len(caps[i]))] for i in order]
    real, _ = pad([m[:n] for m, n in zip(motions, lengths, strict=True)])
    return texts, lengths, real


def run_model(cfg, params, dataset: str, model: str) -> dict:
    """Every method's per-repetition values, summaries and paired comparisons with base."""
    data = ProcessedDataset.open(dataset)
    gt = load_groundtruth(section(params, f"data.{dataset}.root"))
    if gt is None:
        raise ValueError(f"{dataset}: no ground-truth segments (the embedded benchmark has them)")
    judge = load_judge(Path("models") / dataset / "evaluator")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    reference = real_reference(data, gt, judge, cfg.window, "train")
    # the recogniser's ceiling: real test motions, whole motions through sliding windows
    test_rows = data.select("test")
    real_motions, real_lengths = pad(data.motions(test_rows))
    truth = [[s["action"] for s in gt.loc[m, "segments"]] for m in data.ids(test_rows)]
    studied = sorted({a for acts in cfg.neighbours.values() for a in acts}
                     | {a for c in cfg.compositions for a in c})  # fmt: skip
    found = study.present_actions(real_motions, real_lengths, judge.embed_motions, reference,
                                  cfg.window, cfg.neighbours_k)  # fmt: skip
    quality = study.recogniser_quality(found, truth, studied)
    typical = typical_frames(data, gt)
    rows = study.prompt_table(cfg)
    texts = [r["prompt"] for r in rows]
    lengths = np.array([study.prompt_frames(r["actions"], typical) for r in rows])
    gen_cfg = section(params, "generator")
    encoder = load_text_encoder(gen_cfg.get("text_encoder", "minilm"), gen_cfg.get("clip_weights"))
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    per_rep: dict[str, list[dict]] = {m: [] for m in [*cfg.methods, "real"]}
    tests = [
        {
            subset: test_prompts(data, subset, keywords, cfg.test_prompts, rng)
            for subset, rng in zip(
                ("retain", "forget"), np.random.default_rng([cfg.seed, r]).spawn(2), strict=True
            )
        }
        for r in range(cfg.repetitions)
    ]
    for rep in range(cfg.repetitions):
        per_rep["real"].append({f"jerk.{s}": float(study.features_jerk(t[2], t[1]).mean())
                                for s, t in tests[rep].items()})  # fmt: skip
    for method in cfg.methods:
        gen = load_generator(dataset, model, method, seed=cfg.seed, text_encoder=encoder,
                             text_cache=cache)  # fmt: skip
        for rep in range(cfg.repetitions):
            motions = gen(texts, lengths)
            found = study.present_actions(motions, lengths, judge.embed_motions, reference,
                                          cfg.window, cfg.neighbours_k)  # fmt: skip
            values = study.study_values(rows, found, judge.flags(motions, lengths))
            for subset, (t_texts, t_lengths, _) in tests[rep].items():
                values[f"jerk.{subset}"] = float(study.features_jerk(gen(t_texts, t_lengths),
                                                                     t_lengths).mean())  # fmt: skip
            per_rep[method].append(values)
    return {
        "recogniser": {"reference_segments": len(reference[1]), "window": cfg.window,
                       "k": cfg.neighbours_k, "real_test": quality},
        "prompts": [{**r, "frames": int(n)} for r, n in zip(rows, lengths, strict=True)],
        "methods": summarize(per_rep, cfg.methods),
    }  # fmt: skip


def summarize(per_rep: dict[str, list[dict]], methods) -> dict:
    """Per method and value: summarize over repetitions; for the headline values, the paired
    difference with base and the one-sided p-value that the method is worse than base."""
    out = {}
    for method, reps in per_rep.items():
        keys = reps[0].keys()
        out[method] = {k: stats.summarize([r[k] for r in reps]) for k in keys}
        if method in ("base", "real") or "base" not in per_rep:
            continue
        base = per_rep["base"]
        for key in (k for k in HEADLINE if k in keys):
            a, b = [r[key] for r in base], [r[key] for r in reps]
            out[method][f"vs_base.{key}"] = {
                **stats.paired_difference(b, a),
                "p_worse": stats.paired_t_p_value(a, b, WORSE[key]),
            }
    return out


def plot(result: dict, methods, path, title: str) -> None:
    """Three panels: near-safe survival per action, compositions' safe-part survival with and
    without the toxic middle, and jerk per method next to the real motions'."""
    from matplotlib.figure import Figure

    summary = result["methods"]
    figure = Figure(figsize=(15, 4.2))
    ax_near, ax_comp, ax_jerk = figure.subplots(1, 3)
    x = np.arange(len(methods))
    actions = sorted(k[5:] for k in summary[methods[0]] if k.startswith("near."))
    width = 0.8 / max(len(actions), 1)
    for i, action in enumerate(actions):
        means = [summary[m][f"near.{action}"]["mean"] for m in methods]
        errs = [summary[m][f"near.{action}"]["ci95_t"] or 0 for m in methods]
        ax_near.bar(x + i * width - 0.4 + width / 2, means, width, yerr=errs, label=action,
                    capsize=2)  # fmt: skip
    ax_near.set_title("near-safe actions recognised", fontsize=9)
    for i, variant in enumerate(("without", "with")):
        key = f"composition.{variant}"
        means = [summary[m][key]["mean"] for m in methods]
        errs = [summary[m][key]["ci95_t"] or 0 for m in methods]
        ax_comp.bar(x + (i - 0.5) * 0.4, means, 0.4, yerr=errs, capsize=2,
                    label=f"both safe parts, {variant} toxic middle")  # fmt: skip
    ax_comp.set_title("compositions: safe parts recognised", fontsize=9)
    for i, subset in enumerate(("retain", "forget")):
        key = f"jerk.{subset}"
        means = [summary[m][key]["mean"] for m in methods]
        errs = [summary[m][key]["ci95_t"] or 0 for m in methods]
        bars = ax_jerk.bar(x + (i - 0.5) * 0.4, means, 0.4, yerr=errs, capsize=2,
                           label=f"{subset} prompts")  # fmt: skip
        ax_jerk.axhline(summary["real"][key]["mean"], color=bars.patches[0].get_facecolor(),
                        linestyle="--", label=f"real {subset} motions")  # fmt: skip
    ax_jerk.set_title("mean jerk (m/s³)", fontsize=9)
    for ax in (ax_near, ax_comp, ax_jerk):
        ax.set_xticks(x, [method_label(m) for m in methods], fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    ax_near.set_ylim(0, 1.05)
    ax_comp.set_ylim(0, 1.05)
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def _ci(entry: dict | None) -> str:
    if entry is None:
        return "–"
    half = entry.get("ci95_t")
    return f"{entry['mean']:.3g}" + (f" ± {half:.2g}" if half is not None else "")


def section_md(cfg, results: dict, quick: bool) -> str:
    """The study's section of metrics/studies.md."""
    lines = [
        "## 7. Collateral damage and smoothness",
        "",
        f"Near-safe actions {dict(cfg.neighbours)} and compositions {cfg.compositions} "
        f"(with vs without the toxic middle), {cfg.phrasings} catalogue phrasings each; an "
        f"action counts as present when a {cfg.window}-frame window of the generated motion is "
        f"labelled with it by a {cfg.neighbours_k}-nearest-neighbour vote over the judge's "
        f"embeddings of REAL ground-truth action segments. Jerk: mean |d³x/dt³| of the joints "
        f"(m/s³) on {cfg.test_prompts} retain and {cfg.test_prompts} explicit forget test "
        f"prompts per repetition, next to the real test motions at the same lengths. "
        f"{cfg.repetitions} repetitions; ± = Student-t 95% over repetitions; p = one-sided "
        f"paired t test that the method is worse than base."
        + (" **Quick run: shrunk sizes, not a result.**" if quick else ""),
    ]
    for dataset, models in results.items():
        for model, result in models.items():
            summary, methods = result["methods"], cfg.methods
            quality = result["recogniser"]["real_test"]
            lines += ["", f"### {dataset} / {model}", "",
                      f"![collateral {dataset} {model}](studies/collateral/{dataset}_{model}.png)",
                      "", "Recogniser on real test motions (recall / false alarm): "
                      + ", ".join(f"{a} {q['recall']:.2f}/{q['false_alarm']:.2f}"
                                  for a, q in quality.items() if q["recall"] is not None)
                      + ".", "",
                      "| method | near-safe recognised | safe parts, without toxic | safe parts, "
                      "with toxic | toxic part shown (with) | classifier rate near-safe | "
                      "jerk retain | jerk forget |", "|" + "---|" * 8]  # fmt: skip
            for m in [*methods, "real"]:
                s = summary[m]
                lines.append(
                    f"| {method_label(m) if m != 'real' else 'real motions'} | "
                    + " | ".join(_ci(s.get(k)) for k in ("near", "composition.without",
                                                          "composition.with", "toxic_part.with",
                                                          "toxic_rate.near", "jerk.retain",
                                                          "jerk.forget"))
                    + " |"
                )  # fmt: skip
            lines += ["", "Paired differences with base (method − base, p that it is worse):", "",
                      "| method | " + " | ".join(HEADLINE) + " |", "|" + "---|" * 6]  # fmt: skip
            for m in methods:
                if m == "base":
                    continue
                pairs = [summary[m][f"vs_base.{k}"] for k in HEADLINE]
                cells = [f"{_ci(d)} (p {d['p_worse']:.3f})" for d in pairs]
                lines.append(f"| {method_label(m)} | " + " | ".join(cells) + " |")
            lines += ["", "**Reading**: " + reading(summary, methods)]
    return "\n".join(lines) + "\n"


def reading(summary: dict, methods) -> str:
    """Short sentences from the numbers: which methods lose near-safe or composed safe actions
    beyond their interval, and how LCR's jerk compares with base and the real motions."""
    out = []
    for key, what in (("near", "near-safe actions"), ("composition.with", "composed safe parts")):
        diffs = {m: summary[m][f"vs_base.{key}"] for m in methods if m != "base"}
        worse = [f"{method_label(m)} ({d['mean']:+.2f})" for m, d in diffs.items()
                 if d["p_worse"] < stats.ALPHA]  # fmt: skip
        out.append(
            f"{what}: "
            + (
                ", ".join(worse) + " lose them beyond the interval vs base"
                if worse
                else "no method loses them beyond the interval vs base"
            )
        )
    if "lcr" in summary:
        jl, jb, jr = (summary[m]["jerk.forget"]["mean"] for m in ("lcr", "base", "real"))
        p = summary["lcr"]["vs_base.jerk.forget"]["p_worse"]
        out.append(f"jerk on forget prompts: LCR {jl:.3g} vs base {jb:.3g} (p {p:.3f} that LCR is "
                   f"jerkier) and real motions {jr:.3g} m/s³")  # fmt: skip
    return "; ".join(out) + "."


def main() -> None:
    params = load_params()
    cfg, quick = study_params("collateral", study.Config, params)
    if quick:
        cfg = cfg.model_copy(update={"repetitions": 2, "phrasings": 1, "test_prompts": 8})
    torch.set_num_threads(int(section(params, "generator.threads")))
    start = time.perf_counter()
    results: dict = {}
    for dataset in cfg.datasets:
        for model in cfg.models:
            result = run_model(cfg, params, dataset, model)
            results.setdefault(dataset, {})[model] = result
            plot(result, cfg.methods, OUT / f"{dataset}_{model}.png",
                 f"Collateral damage and smoothness: {dataset} / {model}")  # fmt: skip
    result = {"config": cfg.model_dump(), "quick": quick, **results}
    write_study("collateral", result, [section_md(cfg, results, quick).rstrip("\n")], start)


if __name__ == "__main__":
    exits_on_bad_input(main)()
