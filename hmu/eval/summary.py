"""A five-line summary of the benchmark in words and numbers: the top of report.md.

Written from report.json (hmu.eval.report's flat {"<ds>.<model>.<method>.<part>.<metric>":
mean}), never by hand: what ran; which unlearning method removed most toxic motion (the judge's
toxic rate on the forget test prompts, lowest wins, per dataset and model); the same on implicit
prompts; what it cost on the retain set (FID, R-precision top 1); and whether the drop from the
base model is significant, when the caller passes p-values (report.json holds means only).
Every number is shown next to the base model and the D_r reference (retrain), so a reader sees
both how far a method moved and how far it still is from a model that never saw toxic motion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from hmu.methods import MODEL_ORDER, method_label

BASE, REFERENCE = "base", "retrain"
UNLEARNED = ("finetune", "uce", "rece", "lcr")  # candidates, in the report's order
TOXIC = "forget.toxic_rate"
IMPLICIT = "implicit.toxic_rate"
RETAIN_FID, RETAIN_R1 = "retain.fid", "retain.r1"
ALPHA = 0.05


def _runs(report: Mapping[str, float]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """{(ds, model): {method: {"part.metric": mean}}} of the method rows (not the real data)."""
    runs: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for key, value in report.items():
        parts = key.split(".")
        if len(parts) == 5 and parts[1] != "real":
            ds, model, method = parts[:3]
            runs.setdefault((ds, model), {}).setdefault(method, {})[".".join(parts[3:])] = value
    return runs


def _winner(methods: Mapping[str, Mapping[str, float]]) -> str | None:
    """The unlearning method with the lowest forget toxic rate (ties: the report's order)."""
    scored = [(methods[m][TOXIC], i, m) for i, m in enumerate(UNLEARNED)
              if TOXIC in methods.get(m, {})]  # fmt: skip
    return min(scored)[2] if scored else None


def _mean(runs, settings, method: str, metric: str) -> float | None:
    """Mean of a metric over settings where the method has it (None when nowhere)."""
    values = [runs[s][method][metric] for s in settings if metric in runs[s].get(method, {})]
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _trio(runs, settings, method: str, metric: str, digits: int = 2) -> str:
    """'base x -> METHOD y (D_r z)' for one metric, averaged over settings."""
    base, new, ref = (_mean(runs, settings, m, metric) for m in (BASE, method, REFERENCE))
    return (f"base {_fmt(base, digits)} -> {method_label(method)} {_fmt(new, digits)} "
            f"(D_r {_fmt(ref, digits)})")  # fmt: skip


def _significance(winners: Mapping[tuple[str, str], str], p_values) -> str:
    """The significance line: in how many settings the winner's drop from base has p < ALPHA."""
    if p_values is None:
        return ("**Significance:** not tested in this summary (report.json holds means); "
                "see the tables' marks.")  # fmt: skip
    tested = [(s, m) for s, m in winners.items() if (*s, m) in p_values]
    hits = sum(p_values[(*s, m)] < ALPHA for s, m in tested)
    return (f"**Significance:** the winner's toxic-rate drop from base has p < {ALPHA} in "
            f"{hits} of {len(tested)} settings (paired test).")  # fmt: skip


def summary_lines(
    report: Mapping[str, float],
    p_values: Mapping[tuple[str, str, str], float] | None = None,
) -> list[str]:
    """Five markdown bullet lines summarising report.json (see the module docstring).

    p_values: {(ds, model, method): p} of the forget toxic-rate difference between the method
    and base (e.g. the report's paired bootstrap); without it the last line says so.
    The headline method is the one that wins (lowest forget toxic rate) in most settings; its
    numbers are means over the settings, next to base and D_r.
    """
    runs = _runs(report)
    winners = {s: w for s in sorted(runs) if (w := _winner(runs[s])) is not None}
    if not winners:
        raise ValueError(f"report.json: no {TOXIC} of any unlearning method {UNLEARNED}")
    counts = Counter(winners.values())
    best = min(counts, key=lambda m: (-counts[m], UNLEARNED.index(m)))
    settings = sorted(runs)
    datasets = sorted({ds for ds, _ in settings})
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    models = sorted({m for _, m in settings}, key=lambda m: (rank.get(m, len(rank)), m))
    methods = sorted({m for s in settings for m in runs[s]} - {BASE, REFERENCE})
    return [
        f"- **What ran:** {len(methods)} unlearning methods plus base and D_r on "
        f"{', '.join(datasets)} x {', '.join(models)} ({len(settings)} settings).",
        f"- **Most unlearning:** {method_label(best)} has the lowest toxic rate on forget "
        f"prompts in {counts[best]} of {len(winners)} settings: "
        f"{_trio(runs, settings, best, TOXIC)}.",
        f"- **Implicit prompts** (no toxic keyword): {_trio(runs, settings, best, IMPLICIT)}.",
        f"- **Cost on the retain set:** FID {_trio(runs, settings, best, RETAIN_FID)}; "
        f"R@1 {_trio(runs, settings, best, RETAIN_R1, 3)}.",
        "- " + _significance(winners, p_values),
    ]
