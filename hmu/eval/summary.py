"""A five-line summary of the benchmark in words and numbers: the top of report.md.

Written from report.json (hmu.eval.report.summary's flat {"<ds>.<model>.<method>.<part>.<metric>":
mean, "<ds>.<model>.<method>.excess.<part>.<rate>[_ci95_t]": ...}), never by hand. The main
unlearning number is the EXCESS toxic rate over D_r (method minus the model retrained without
the forget set, paired per repetition, with its t-interval): 0 means "as clean as a model that
never saw toxic motion". The lines say what ran; which unlearning method has the lowest explicit
classifier excess (per dataset and model, the method winning most settings leads) and whether
its interval excludes 0; the same on implicit prompts; its cost on the retain set (FID, R@1)
against base and D_r; and whether the report's paired test marks it significantly best (the
table marks, passed in by the caller, so the summary and the tables never disagree).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from hmu.methods import MODEL_ORDER, method_label

BASE, REFERENCE = "base", "retrain"
UNLEARNED = ("finetune", "uce", "rece", "lcr")  # candidates, in the report's order
HEADLINE = "excess.forget.toxic_rate"  # explicit prompts, calibrated classifier
KINEMATIC = "excess.forget.kinematic_rate"  # the training-free detector, when present
IMPLICIT_PARTS = {"implicit_seen": "seen templates", "implicit_heldout": "held-out templates",
                  "implicit": "implicit prompts"}  # fmt: skip
RETAIN_FID, RETAIN_R1 = "retain.fid", "retain.r1"
NOT_METHODS = ("agreement",)  # report.json keys with a method slot that hold no method

Runs = dict[tuple[str, str], dict[str, dict[str, float]]]


def _runs(report: Mapping[str, float]) -> Runs:
    """{(ds, model): {method: {"part.metric" or "excess.part.rate[_ci95_t]": value}}} of the
    method rows (not the Real motion row, not the instrument agreement)."""
    runs: Runs = {}
    for key, value in report.items():
        parts = key.split(".")
        if len(parts) >= 5 and parts[1] != "real" and parts[2] not in NOT_METHODS:
            ds, model, method = parts[:3]
            runs.setdefault((ds, model), {}).setdefault(method, {})[".".join(parts[3:])] = value
    return runs


def _winner(methods: Mapping[str, Mapping[str, float]]) -> str | None:
    """The unlearning method with the lowest explicit classifier excess (ties: report order)."""
    scored = [(methods[m][HEADLINE], i, m) for i, m in enumerate(UNLEARNED)
              if HEADLINE in methods.get(m, {})]  # fmt: skip
    return min(scored)[2] if scored else None


def _mean(runs: Runs, settings, method: str, metric: str) -> float | None:
    """Mean of a metric over settings where the method has it (None when nowhere)."""
    values = [runs[s][method][metric] for s in settings if metric in runs[s].get(method, {})]
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    return "n/a" if value is None else f"{value:{'+' if sign else ''}.{digits}f}"


def _trio(runs: Runs, settings, method: str, metric: str, digits: int = 2) -> str:
    """'base x -> METHOD y (D_r z)' for one metric, averaged over settings (excess: signed,
    without D_r, whose excess is 0 by definition)."""
    excess = metric.startswith("excess.")
    base, new, ref = (_mean(runs, settings, m, metric) for m in (BASE, method, REFERENCE))
    text = (f"base {_fmt(base, digits, excess)} -> {method_label(method)} "
            f"{_fmt(new, digits, excess)}")  # fmt: skip
    return text if excess else f"{text} (D_r {_fmt(ref, digits)})"


def _excludes_zero(runs: Runs, settings, method: str) -> tuple[int, int]:
    """(settings where the method's headline t-interval excludes 0, settings with one)."""
    pairs = [(runs[s][method][HEADLINE], runs[s][method].get(f"{HEADLINE}_ci95_t"))
             for s in settings if HEADLINE in runs[s].get(method, {})]  # fmt: skip
    tested = [(mean, ci) for mean, ci in pairs if ci is not None]
    return sum(abs(mean) > ci for mean, ci in tested), len(tested)


def _implicit(runs: Runs, settings, method: str) -> str:
    """The implicit-prompt excesses present (seen, held-out, or the legacy single list)."""
    found = [(name, f"excess.{part}.toxic_rate") for part, name in IMPLICIT_PARTS.items()]
    found = [(name, metric) for name, metric in found
             if _mean(runs, settings, method, metric) is not None]  # fmt: skip
    if not found:
        return "no implicit prompts in the metrics"
    return "; ".join(f"{_trio(runs, settings, method, metric)} ({name})" for name, metric in found)


def _significance(best: str, settings, marks) -> str:
    """How the report's paired test marked the headline method's explicit classifier column."""
    if marks is None:
        return "**Paired test:** not given to this summary; see the tables' bold and ≈ marks."
    given = [marks.get(s, {}).get(best) for s in settings]
    return (f"**Paired test:** {method_label(best)} is significantly best on the explicit "
            f"classifier rate (bold in the tables) in {given.count('best')} of {len(given)} "
            f"settings and tied with the best (≈) in {given.count('tie')}; in the others no "
            "method stands out or another one wins.")  # fmt: skip


def _ordered_settings(runs: Runs) -> tuple[list[str], list[str]]:
    """Datasets alphabetically, models in the paper's order."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    datasets = sorted({ds for ds, _ in runs})
    return datasets, sorted({m for _, m in runs}, key=lambda m: (rank.get(m, len(rank)), m))


def summary_lines(
    report: Mapping[str, float],
    marks: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> list[str]:
    """Five markdown bullet lines summarising report.json (see the module docstring).

    marks: {(ds, model): {method: "best" | "tie"}} of the explicit classifier column, as the
    report's paired test set them (hmu.eval.report.column_marks); without it the last line
    says so. The headline method wins (lowest explicit classifier excess) in most settings;
    its numbers are means over the settings where it has them. Without any excess (no D_r
    reference, no classifier) the summary is one line saying so.
    """
    runs = _runs(report)
    winners = {s: w for s in sorted(runs) if (w := _winner(runs[s])) is not None}
    if not winners:
        return [f"- **No summary:** no {HEADLINE} of any unlearning method {UNLEARNED} "
                "(the D_r reference or the classifier is missing)."]  # fmt: skip
    counts = Counter(winners.values())
    best = min(counts, key=lambda m: (-counts[m], UNLEARNED.index(m)))
    settings = sorted(runs)
    datasets, models = _ordered_settings(runs)
    methods = [method_label(m) for m in UNLEARNED if any(m in runs[s] for s in settings)]
    excluded, tested = _excludes_zero(runs, settings, best)
    has_kinematic = _mean(runs, settings, best, KINEMATIC) is not None
    kinematic = f"; kinematic detector {_trio(runs, settings, best, KINEMATIC)}" * has_kinematic
    return [
        f"- **What ran:** {', '.join(methods)} plus base and D_r on {', '.join(datasets)} x "
        f"{', '.join(models)} ({len(settings)} setting{'s' * (len(settings) != 1)}).",
        f"- **Most unlearning:** {method_label(best)} has the lowest explicit toxic rate in "
        f"excess of D_r in {counts[best]} of {len(winners)} settings: classifier "
        f"{_trio(runs, settings, best, HEADLINE)} (0 = as clean as D_r; its 95% interval "
        f"excludes 0 in {excluded} of {tested} settings){kinematic}.",
        f"- **Implicit prompts** (no toxic keyword), classifier excess over D_r: "
        f"{_implicit(runs, settings, best)}.",
        f"- **Cost on the retain set:** FID {_trio(runs, settings, best, RETAIN_FID)}; "
        f"R@1 {_trio(runs, settings, best, RETAIN_R1, 3)}.",
        "- " + _significance(best, [s for s in settings if best in runs[s]], marks),
    ]
