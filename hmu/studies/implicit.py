"""Study 5 (issue 14, item 5; the paper's Fig. 1): robustness of unlearning to implicit prompts.

Reads only what the main pipeline measured (metrics/<ds>/<model>/<method>.json): per method, the
toxic rate of both instruments on explicit forget prompts (the forget test set), implicit prompts
seen in training and held-out paraphrases, with t-intervals, the excess over D_r, and how much
of the base model's excess each method removes per prompt kind (paired per repetition: the same
prompts and crops in every method). Then it explains LCR's explicit/implicit behaviour with the
codes the base model generates (study 1's per-sample arrays): the share of layer-0 tokens that
are LCR-selected codes per prompt kind, how many toxic base generations contain a selected code
at all (LCR cannot change the others), and whether a larger r or editing all layers changes the
picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hmu.studies.common import INSTRUMENTS, REFERENCE, paired_test

STUDY = "implicit"
KINDS = ("forget", "implicit_seen", "implicit_heldout")  # explicit, implicit seen, held out
LABELS = {"forget": "explicit", "implicit_seen": "implicit seen", "implicit_heldout": "held-out"}


class Config(BaseModel):
    """params.yaml `studies.implicit`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    datasets: Annotated[list[str], Field(min_length=1)] = ["humanml3d"]
    models: Annotated[list[Literal["momask", "bamm"]], Field(min_length=1)] = ["momask"]
    methods: Annotated[list[str], Field(min_length=1)] = ["base", "finetune", "uce", "rece", "lcr"]
    lcr_variants: list[str] = ["default", "min_support=1", "r=32", "layers=0-1-2-3-4-5"]


def method_table(results: Mapping[str, Mapping]) -> dict[str, dict]:
    """Per method: {kind: {instrument: summary}} toxic rates, {kind: {instrument: excess}}
    over D_r (the JSON's own excess block) and {kind: {instrument: paired_test(method, base)}}
    (the drop from the base model, one-sided p of "lower than base"); results: {method: main
    metrics JSON}, must hold "base"."""
    base = results["base"]
    out = {}
    for method, result in results.items():
        row: dict[str, Any] = {"toxic": {}, "excess": {}, "vs_base": {}}
        for kind in KINDS:
            row["toxic"][kind] = {i: result[kind][i] for i in INSTRUMENTS}
            row["excess"][kind] = {i: result.get("excess", {}).get(kind, {}).get(i)
                                   for i in INSTRUMENTS}  # fmt: skip
            row["vs_base"][kind] = {
                i: paired_test(result[kind][i]["values"], base[kind][i]["values"])
                for i in INSTRUMENTS
            }
        out[method] = row
    return out


def erased_share(method_values, base_values, reference_values) -> float:
    """Share of the base model's excess over D_r that a method removes:
    1 - (method - D_r) / (base - D_r), from the means of per-repetition values (NaN when the
    base model has no excess)."""
    method, base, ref = (float(np.mean(v)) for v in (method_values, base_values, reference_values))
    return float("nan") if base - ref <= 0 else 1.0 - (method - ref) / (base - ref)


def erased_shares(results: Mapping[str, Mapping], instrument: str = "toxic_rate") -> dict:
    """{method: {kind: erased_share}} with D_r = results[REFERENCE]."""
    ref, base = results[REFERENCE], results["base"]
    return {
        method: {
            kind: erased_share(
                r[kind][instrument]["values"],
                base[kind][instrument]["values"],
                ref[kind][instrument]["values"],
            )  # fmt: skip
            for kind in KINDS
        }
        for method, r in results.items()
    }


def toxic_coverage(codes: np.ndarray, base_flags: np.ndarray, lcr_flags: np.ndarray, selected):
    """How LCR can reach the toxic base generations of one prompt kind.

    codes (R, N, L) layer-0 codes of the base model's generations (-1 = padding), base_flags /
    lcr_flags (R, N) the instrument's verdicts on them decoded with the base and the LCR
    codebooks. Returns {"toxic": number of toxic base generations, "with_selected": share of them
    containing at least one selected code, "token_share": mean share of their tokens that are
    selected, "cleared_with": share of those with a selected code that LCR makes non-toxic,
    "cleared_without": the same for those without one (LCR leaves their codes unchanged)}.
    A share over an empty set is None (JSON null, printed "none"), never NaN."""
    codes, base_flags, lcr_flags = np.asarray(codes), np.asarray(base_flags), np.asarray(lcr_flags)
    valid = codes >= 0
    hit = np.isin(codes, np.asarray(selected, dtype=np.int64)) & valid
    has = hit.any(-1)  # (R, N)
    share = hit.sum(-1) / np.maximum(valid.sum(-1), 1)
    toxic = base_flags.astype(bool)
    cleared = ~lcr_flags.astype(bool)
    return {
        "toxic": int(toxic.sum()),
        "with_selected": _mean_or_none(has[toxic]),
        "token_share": _mean_or_none(share[toxic]),
        "cleared_with": _mean_or_none(cleared[toxic & has]),
        "cleared_without": _mean_or_none(cleared[toxic & ~has]),
    }


def _mean_or_none(values: np.ndarray) -> float | None:
    """The mean of `values`, or None (JSON null) for an empty selection instead of NaN."""
    return float(values.mean()) if values.size else None


def enriched_codes(usage: np.ndarray, background: np.ndarray, top: int) -> np.ndarray:
    """The `top` codes most over-used in `usage` relative to `background` (both (K,) counts):
    ratio of usage shares with add-one smoothing, ties broken by the lower index."""
    u = (np.asarray(usage, np.float64) + 1) / (np.sum(usage) + len(usage))
    b = (np.asarray(background, np.float64) + 1) / (np.sum(background) + len(background))
    return np.argsort(-(u / b), kind="stable")[:top]


def code_overlap(usage: Mapping[str, Sequence[int]], selected, top: int) -> dict[str, Any]:
    """Which codes each prompt kind over-uses against the retain prompts (top-`top` enriched
    codes per kind), how many of them LCR selected, and the overlap of the explicit set with
    the implicit ones."""
    chosen = set(int(c) for c in selected)
    enriched = {k: enriched_codes(usage[k], usage["retain"], top) for k in KINDS}
    return {
        "enriched": {k: v.tolist() for k, v in enriched.items()},
        "selected_in_enriched": {k: len(chosen & set(v.tolist())) for k, v in enriched.items()},
        "overlap_with_explicit": {
            k: len(set(enriched["forget"].tolist()) & set(enriched[k].tolist())) for k in KINDS
        },
    }


# ---------------------------------------------------------------- tables, figure, reading


def _pm(summary: Mapping | None, digits: int = 2) -> str:
    if summary is None:
        return "-"
    half = summary.get("ci95_t")
    return f"{summary['mean']:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def rates_table(rows: Mapping[str, dict], shares: Mapping[str, dict]) -> str:
    """Markdown: per method, toxic rates (classifier / kinematic) per kind, the classifier
    excess over D_r and the share of the base excess removed, per kind."""
    head = ("| method | " + " | ".join(f"{LABELS[k]} clf / kin" for k in KINDS) + " | "
            + " | ".join(f"{LABELS[k]} excess clf" for k in KINDS)
            + " | erased explicit / seen / held-out |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    for method, row in rows.items():
        tox = [f"{_pm(row['toxic'][k]['toxic_rate'])} / {_pm(row['toxic'][k]['kinematic_rate'])}"
               for k in KINDS]  # fmt: skip
        exc = [_pm(row["excess"][k]["toxic_rate"]) for k in KINDS]
        erased = " / ".join(_pct(shares[method][k]) for k in KINDS)
        lines.append(f"| {method} | {' | '.join(tox)} | {' | '.join(exc)} | {erased} |")
    return "\n".join(lines)


def figure(rows: Mapping[str, dict], title: str):
    """Grouped bars: toxic rate per method and prompt kind, one panel per instrument, 95%
    t-interval error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(INSTRUMENTS), figsize=(12, 4), sharey=True)
    x = np.arange(len(rows))
    width = 0.8 / len(KINDS)
    for ax, instrument in zip(axes, INSTRUMENTS, strict=True):
        for j, kind in enumerate(KINDS):
            means = [row["toxic"][kind][instrument]["mean"] for row in rows.values()]
            errs = [row["toxic"][kind][instrument]["ci95_t"] or 0 for row in rows.values()]
            ax.bar(x + (j - 1) * width, means, width, yerr=errs, capsize=2, label=LABELS[kind])
        ax.set_xticks(x, list(rows), rotation=30)
        ax.set_title(instrument.replace("toxic_rate", "classifier").replace("_rate", ""))
    axes[0].set_ylabel("toxic rate")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def lcr_table(variants: Mapping[str, dict], coverage: Mapping[str, dict]) -> str:
    """Markdown: LCR variants (study 1 rows) with their toxic rates per kind and selected-token
    shares, then the toxic-coverage line per kind for the default."""
    head = ("| LCR variant | " + " | ".join(f"{LABELS[k]} clf" for k in KINDS) + " | "
            + " | ".join(f"selected share {LABELS[k]}" for k in KINDS) + " |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    for name, row in variants.items():
        tox = [_pm(row["toxic"][k]["toxic_rate"]) for k in KINDS]
        share = [f"{row['selected_share'][k]['mean']:.1%}" for k in KINDS]
        lines.append(f"| {name} | {' | '.join(tox)} | {' | '.join(share)} |")
    lines += ["", "| prompt kind (base model, default LCR selection) | toxic base generations | "
              "with a selected code | their tokens selected | cleared by LCR: with / without a "
              "selected code |", "|---|---|---|---|---|"]  # fmt: skip
    for kind, c in coverage.items():
        lines.append(
            f"| {LABELS[kind]} | {c['toxic']} | {_pct(c['with_selected'])} | "
            f"{_pct(c['token_share'], '.1%')} | {_pct(c['cleared_with'])} / "
            f"{_pct(c['cleared_without'])} |"
        )
    return "\n".join(lines)


def _pct(x: float | None, fmt: str = ".0%") -> str:
    """A share as a percentage; "none" for a share over an empty set (None)."""
    return "none" if x is None else f"{x:{fmt}}".replace("-0%", "0%")


def reading(rows: Mapping[str, dict], shares: Mapping[str, dict], lcr: Mapping | None) -> str:
    """The honest reading of one (dataset, model), generated from the numbers."""
    out = []
    for method, row in rows.items():
        if method in ("base", REFERENCE):
            continue
        drops = {k: row["vs_base"][k]["toxic_rate"] for k in KINDS}
        sig = [LABELS[k] for k in KINDS if drops[k]["p_value"] < 0.05]
        out.append(
            f"- **{method}** removes {_pct(shares[method]['forget'])} of the base model's "
            f"explicit excess, {_pct(shares[method]['implicit_seen'])} of the implicit-seen and "
            f"{_pct(shares[method]['implicit_heldout'])} of the held-out one; its drop from base "
            "is significant (paired t over repetitions, p < 0.05) on "
            + (", ".join(sig) or "no prompt kind")
            + "."
        )
    if "lcr" in shares:
        out += ["", gap_reading(shares["lcr"])]
    if lcr is not None:
        out += ["", lcr_reading(lcr)]
    return "\n".join(out)


def gap_reading(share: Mapping[str, float]) -> str:
    """Whether LCR erases explicit toxicity much more than implicit (issue 14's surprise)."""
    gap = share["forget"] - min(share["implicit_seen"], share["implicit_heldout"])
    if gap > 0.15:
        return (
            f"LCR erases explicit toxicity ({_pct(share['forget'])} of the excess) much more "
            f"than implicit ({_pct(share['implicit_seen'])} seen, "
            f"{_pct(share['implicit_heldout'])} held-out): the gap of issue 14 is reproduced."
        )
    return (
        "The gap reported in issue 14 (LCR: implicit 0.70 -> 0.67 while explicit 0.92 -> 0.28) "
        f"is NOT reproduced by the current main pipeline: LCR removes "
        f"{_pct(share['forget'])} of the explicit excess over D_r and "
        f"{_pct(share['implicit_seen'])} (seen) / {_pct(share['implicit_heldout'])} (held-out) "
        "of the implicit one."
    )


def lcr_reading(lcr: Mapping) -> str:
    """What the code analysis says about LCR's explicit vs implicit erasure."""
    cov, variants = lcr["coverage"], lcr["variants"]
    text = []
    text.append(
        "Codes: the default selection makes up "
        + ", ".join(
            f"{variants['default']['selected_share'][k]['mean']:.0%} ({LABELS[k]})" for k in KINDS
        )  # fmt: skip
        + " of the base model's layer-0 tokens; of its toxic generations, "
        + ", ".join(f"{_pct(cov[k]['with_selected'])} ({LABELS[k]})" for k in KINDS)
        + " contain at least one selected code. LCR clears "
        + ", ".join(_pct(cov[k]["cleared_with"]) for k in KINDS)
        + " of those (explicit, seen, held-out) and "
        + ", ".join(_pct(cov[k]["cleared_without"]) for k in KINDS)
        + " of the toxic generations without a selected code, whose decoding it does not change"
        " at layer 0 (a nonzero share there comes from other edited layers or the classifier's"
        " noise)."
    )
    overlap = lcr["overlap"]
    text.append(
        f"Of the {len(overlap['enriched']['forget'])} codes most over-used (against retain "
        "prompts) by each kind, LCR selected "
        + ", ".join(f"{overlap['selected_in_enriched'][k]} ({LABELS[k]})" for k in KINDS)
        + "; the implicit-seen and held-out sets share "
        + " and ".join(f"{overlap['overlap_with_explicit'][k]}" for k in KINDS[1:])
        + " of their codes with the explicit set."
    )
    others = [n for n in variants if n != "default"]
    if others:
        text.append(
            "Other selections (study 1): "
            + "; ".join(
                f"{n}: explicit {variants[n]['toxic']['forget']['toxic_rate']['mean']:.2f}, "
                f"seen {variants[n]['toxic']['implicit_seen']['toxic_rate']['mean']:.2f}, "
                f"held-out {variants[n]['toxic']['implicit_heldout']['toxic_rate']['mean']:.2f}"
                for n in others
            )
            + f" (default: explicit "
            f"{variants['default']['toxic']['forget']['toxic_rate']['mean']:.2f}, seen "
            f"{variants['default']['toxic']['implicit_seen']['toxic_rate']['mean']:.2f}, held-out "
            f"{variants['default']['toxic']['implicit_heldout']['toxic_rate']['mean']:.2f})."
        )
    return " ".join(text)
