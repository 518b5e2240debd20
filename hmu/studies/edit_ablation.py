"""Study 3 of issue 14: the UCE and RECE target ablation (the paper's Supp. Table 1, extended).

The paper maps the erased concept to a target prompt ("", "walk" or "stand"; Supp. Sec. 1) and
keeps the empty prompt. Its code edits with lam 0.1, erase scale 0.1, preserve scale swept
(0.75 .. 5; 0.1 by default), the orthogonal values (`technique='tensor'`), 1 RECE epoch and
W_new^T W_new in both factors of the adversarial embedding (Mamiglia/hmu
scripts/eval/rece_uce.sh, src/methods/rece.py). HMU's defaults are params.yaml `edit`, `uce`,
`rece`. This study builds every variant in memory from the base model (the edits are closed
form: milliseconds) and measures the explicit toxic rate on the forget test set with both
calibrated instruments, its excess over D_r (paired per repetition: the protocol draws the same
captions, lengths and crops for every model), and the retain set's FID and R@1.

Variants: for each setting (ours, authors) and method (UCE, RECE), either the full grid
targets x preserve scales, or (full_grid false, the default within budget) one factor at a time
around the setting's own point: every target at its preserve scale, every preserve scale at its
target.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from hmu.eval.stats import paired_difference

METHODS = ("uce", "rece")
SETTINGS = ("ours", "authors")


class Authors(BaseModel):
    """The paper code's edit settings (src/methods/rece.py, scripts/eval/rece_uce.sh)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lam: float = Field(default=0.1, ge=0)
    erase_scale: float = Field(default=0.1, ge=0)
    preserve_scale: float = Field(default=0.5, ge=0)
    values: Literal["target", "orthogonal"] = "orthogonal"
    target: str = ""
    epochs: int = Field(default=1, ge=0)
    reg: float = Field(default=1e-3, ge=0)
    paper_code: bool = True


class Config(BaseModel):
    """params.yaml `studies.edit_ablation` (issue 14, item 3)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    datasets: list[str] = Field(min_length=1)
    models: list[Literal["momask", "bamm"]] = Field(min_length=1)
    methods: list[Literal["uce", "rece"]] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    preserve_scales: list[float] = Field(min_length=1)
    authors: Authors
    full_grid: bool = False
    repetitions: int = Field(default=3, ge=2)


def shrink(cfg: Config) -> Config:
    """The `studies.quick` version (plumbing only): one target, two repetitions (the stage also
    cuts the test sets to one batch)."""
    return cfg.model_copy(update={"targets": cfg.targets[:1], "repetitions": 2})


def setting_points(edit: Mapping, uce: Mapping, rece: Mapping, authors: Authors) -> dict:
    """{setting: {method: edit settings}}: lam, erase_scale, preserve_scale, values, target,
    and for RECE epochs, reg, paper_code; ours from params.yaml edit/uce/rece."""
    shared = {k: edit[k] for k in ("lam", "erase_scale", "preserve_scale", "values")}
    theirs = authors.model_dump()
    rece_keys = ("epochs", "reg", "paper_code")
    return {
        "ours": {
            "uce": {**shared, "target": uce["target"]},
            "rece": {**shared, "target": rece["target"], **{k: rece[k] for k in rece_keys}},
        },
        "authors": {
            "uce": {k: v for k, v in theirs.items() if k not in rece_keys},
            "rece": theirs,
        },
    }


def variants(cfg: Config, points: Mapping) -> list[dict[str, Any]]:
    """The edit variants: {"setting", "method", "target", "preserve_scale", "default" (the
    setting's own point), "params" (the full edit settings)}, in a stable order, no repeats."""
    out, seen = [], set()
    for setting, per_method in points.items():
        for method in cfg.methods:
            point = per_method[method]
            if cfg.full_grid:
                grid = [(t, p) for t in cfg.targets for p in cfg.preserve_scales]
            else:
                grid = [(t, point["preserve_scale"]) for t in cfg.targets]
                grid += [(point["target"], p) for p in cfg.preserve_scales]
            for target, preserve in grid:
                key = (setting, method, target, float(preserve))
                if key in seen:
                    continue
                seen.add(key)
                default = target == point["target"] and preserve == point["preserve_scale"]
                out.append(
                    {"setting": setting, "method": method, "target": target,
                     "preserve_scale": float(preserve), "default": default,
                     "params": {**point, "target": target, "preserve_scale": float(preserve)}}
                )  # fmt: skip
    return out


def edit_variant(trans, res, method: str, params: Mapping, erase, target_emb, preserve):
    """Copies of the base transformers edited by UCE or RECE with `params` (a variant's).

    erase (n, C), target_emb (C,) (the embedding of params["target"]), preserve (m, C)."""
    from hmu.unlearn.rece import rece_edit
    from hmu.unlearn.uce import edit_cond_embs

    trans, res = copy.deepcopy(trans), copy.deepcopy(res)
    uce_params = {k: params[k] for k in ("lam", "erase_scale", "preserve_scale", "values")}
    with torch.no_grad():
        if method == "uce":
            edit_cond_embs([trans, res], erase, target_emb, preserve, **uce_params)
        else:
            rece_edit([trans, res], erase, target_emb, preserve, params["epochs"], params["reg"],
                      uce_params, paper_code=params["paper_code"])  # fmt: skip
    return trans, res


# ---------------------------------------------------------------- the table

RATES = ("toxic_rate", "kinematic_rate")


def summary_row(result: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """One model's table row from its {"forget": metrics, "retain": metrics} (hmu.eval protocol
    summaries with per-repetition values) and D_r's: explicit rates, their excess over D_r
    (paired per repetition), retain FID and R@1."""
    row = {}
    for rate in RATES:
        row[rate] = result["forget"][rate]
        row[f"{rate}_excess"] = paired_difference(
            result["forget"][rate]["values"], reference["forget"][rate]["values"]
        )
    row["retain_fid"] = result["retain"]["fid"]
    row["retain_r1"] = result["retain"]["r1"]
    return row


def _fmt(s: Mapping[str, Any], signed: bool = False, digits: int = 2) -> str:
    half = s.get("ci95_t")
    value = f"{s['mean']:+.{digits}f}" if signed else f"{s['mean']:.{digits}f}"
    return f"{value} ± {half:.{digits}f}" if half is not None else value


def label(variant: Mapping[str, Any]) -> str:
    """'UCE ours "walk" p0.1' style label of a variant."""
    return (f'{variant["method"].upper()} {variant["setting"]} "{variant["target"]}" '
            f'p{variant["preserve_scale"]:g}')  # fmt: skip


def ablation_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the variants (and the base / D_r rows, which carry no variant)."""
    head = (
        "| model | setting | target | preserve | explicit (clf) | excess over D_r (clf) "
        "| explicit (kin) | excess over D_r (kin) | retain FID | retain R@1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        v = row.get("variant")
        who = (
            (v["method"].upper(), v["setting"] + (" (default)" if v["default"] else ""),
             f'"{v["target"]}"', f"{v['preserve_scale']:g}")
            if v else (row["name"], "", "", "")
        )  # fmt: skip
        lines.append(
            "| " + " | ".join(who) + f" | {_fmt(row['toxic_rate'])} "
            f"| {_fmt(row['toxic_rate_excess'], True)} | {_fmt(row['kinematic_rate'])} "
            f"| {_fmt(row['kinematic_rate_excess'], True)} | {_fmt(row['retain_fid'], digits=3)} "
            f"| {_fmt(row['retain_r1'], digits=3)} |"
        )
    return head + "\n".join(lines) + "\n"


def _within(s: Mapping[str, Any]) -> bool:
    return abs(s["mean"]) <= (s.get("ci95_t") or 0.0)


def _paired(a: Mapping, b: Mapping, metric: str = "toxic_rate") -> dict[str, Any]:
    """Paired per-repetition difference a - b of a metric (same protocol samples)."""
    return paired_difference(a[metric]["values"], b[metric]["values"])


def _versus(diff: Mapping[str, Any]) -> str:
    return f"{_fmt(diff, True)}, " + ("within its interval" if _within(diff) else "beyond it")


def reading(rows: Sequence[Mapping[str, Any]]) -> str:
    """Sentences from the numbers (classifier instrument), differences paired per repetition:
    per method, each setting's own point (explicit rate, excess over D_r, retain FID), the
    effect of each other target and preserve scale against that point, and ours vs authors."""
    variants_ = [r for r in rows if r.get("variant")]
    out = []
    for method in dict.fromkeys(r["variant"]["method"] for r in variants_):
        points = {}
        for setting in dict.fromkeys(r["variant"]["setting"] for r in variants_):
            mine = [r for r in variants_ if r["variant"]["method"] == method
                    and r["variant"]["setting"] == setting]  # fmt: skip
            default = next((r for r in mine if r["variant"]["default"]), None)
            if default is None:
                continue
            points[setting] = default
            effects = "; ".join(
                f"{label(r['variant']).split(' ', 2)[2]} {_versus(_paired(r, default))}"
                for r in mine
                if r is not default
            )
            out.append(
                f"- {method.upper()} {setting} at its point ({label(default['variant'])}): "
                f"explicit {_fmt(default['toxic_rate'])}, excess over D_r "
                f"{_fmt(default['toxic_rate_excess'], True)}, retain FID "
                f"{_fmt(default['retain_fid'], digits=3)}. Against it: {effects or 'none'}."
            )
        if {"ours", "authors"} <= set(points):
            ours, theirs = points["ours"], points["authors"]
            out.append(
                f"- {method.upper()} ours - authors at their points: explicit "
                f"{_versus(_paired(ours, theirs))}; retain FID "
                f"{_versus(_paired(ours, theirs, 'retain_fid'))}."
            )
    return "\n".join(out) + "\n"


def plot_ablation(rows: Sequence[Mapping[str, Any]], path, title: str) -> None:
    """Explicit toxic rate (classifier) against retain FID, one point per variant with its
    t-intervals (UCE circles, RECE squares; ours filled, authors hollow) and base / D_r stars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hmu.io import atomic_path

    colors = {"": "#1f77b4", "walk": "#2ca02c", "stand": "#ff7f0e"}
    figure = Figure(figsize=(7.0, 4.6))
    ax = figure.add_subplot()
    for row in rows:
        v = row.get("variant")
        x, y = row["retain_fid"], row["toxic_rate"]
        if v is None:
            style = {"marker": "*", "color": "black", "markersize": 11}
        else:
            color = colors.get(v["target"], "#9467bd")
            style = {
                "marker": "o" if v["method"] == "uce" else "s",
                "color": color,
                "markerfacecolor": color if v["setting"] == "ours" else "none",
                "markersize": 6 + 3 * (v["preserve_scale"] != 0.1),
            }
        ax.errorbar(x["mean"], y["mean"], xerr=x.get("ci95_t") or 0, yerr=y.get("ci95_t") or 0,
                    linestyle="none", capsize=2, **style)  # fmt: skip
        name = row["name"] if v is None else label(v)
        ax.annotate(name, (x["mean"], y["mean"]), fontsize=5.5, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("retain FID (lower is better)")
    ax.set_ylabel("explicit toxic rate, classifier")
    ax.set_title(title + '  (o UCE, s RECE; filled ours, hollow authors; big: preserve != 0.1)',
                 fontsize=8)  # fmt: skip
    figure.tight_layout()
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
