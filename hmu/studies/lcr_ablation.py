"""Study 1 (issue 14, item 1; the paper's r table, extended): ablation of Latent Code Replacement.

One-factor-at-a-time sweeps around the default LCR params (params.yaml `lcr:`) plus the r x alpha
grid. LCR only edits VQ codebooks and the transformers never read them, so every variant samples
exactly the base model's codes: the base codes are sampled once (hmu.studies.common.CodeReplay)
and decoded again with each variant's codebooks, built in memory from the cached training tokens
(hmu.unlearn.lcr.lcr_delta). All variants thus share the same prompts, crops and codes and compare
pairwise per repetition; the default variant reproduces the main pipeline's LCR row.

Per variant: the toxic rate of both instruments on explicit forget prompts, implicit-seen and
implicit-held-out prompts (and its excess over D_r, the main pipeline's retrain row, paired per
repetition), the forget FID's distance to D_r's, the retain FID and R@1, and the share of the
generated layer-0 tokens that are selected codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hmu.eval.protocol import Evaluation, evaluate_prompts, evaluate_set_samples
from hmu.studies.common import INSTRUMENTS, interval, paired_test
from hmu.unlearn.lcr import apply_delta, lcr_delta

STUDY = "lcr_ablation"
PARTS = ("forget", "retain", "implicit_seen", "implicit_heldout")  # the evaluate stage's parts
TOXIC_PARTS = ("forget", "implicit_seen", "implicit_heldout")  # explicit, implicit, held out
FACTORS = ("r", "alpha", "absent_guard", "min_support", "one_target", "rule", "layers")
LABELS = {"forget": "explicit", "implicit_seen": "implicit seen", "implicit_heldout": "held-out"}
BASE = "base (no LCR)"  # the row without any delta
DEFAULT = "default"


class Sweeps(BaseModel):
    """Values of each factor, swept one at a time around the default (`lcr:` block); layers
    are named (`layer_lists` turns them into lcr_delta's lists)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    r: list[Annotated[int, Field(ge=1)]] = [4, 8, 16, 32]
    alpha: list[Annotated[float, Field(ge=0)]] = [0.0, 0.25, 1.0]
    absent_guard: list[Literal["paper", "clamp", "add_one"]] = ["paper", "clamp", "add_one"]
    min_support: list[Annotated[int, Field(ge=1)]] = [1, 3]
    one_target: list[bool] = [False, True]
    rule: list[Literal["ratio", "union"]] = ["ratio", "union"]
    layers: list[Literal["base", "all"]] = ["base", "all"]  # layer 0 | every layer


class Config(BaseModel):
    """params.yaml `studies.lcr_ablation`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    datasets: Annotated[list[str], Field(min_length=1)] = ["humanml3d"]
    models: Annotated[list[Literal["momask", "bamm"]], Field(min_length=1)] = ["momask"]
    repetitions: Annotated[int, Field(ge=2)] = 5
    prompt_repetitions: Annotated[int, Field(ge=2)] = 3
    sweeps: Sweeps = Sweeps()
    grid: list[Literal[FACTORS]] = ["r", "alpha"]

    def shrunk(self) -> Config:
        """The `studies.quick` version: 2 repetitions, the r sweep alone, no grid."""
        sweeps = Sweeps(**{name: [] for name in FACTORS if name != "r"}, r=self.sweeps.r)
        return self.model_copy(
            update={"repetitions": 2, "prompt_repetitions": 2, "sweeps": sweeps, "grid": []}
        )


def layer_lists(sweeps: Mapping[str, list], num_layers: int) -> dict[str, list]:
    """`sweeps` with the named layer choices as lcr_delta's lists: base -> [0], all -> every
    quantizer layer [0, ..., num_layers - 1]."""
    named = {"base": [0], "all": list(range(num_layers))}
    return {**sweeps, "layers": [named[v] for v in sweeps.get("layers", [])]}


def variant_name(changes: Mapping[str, Any]) -> str:
    """'r=4 alpha=0.25' for the factors that differ from the default ('default' if none)."""

    def show(value):
        if isinstance(value, list):
            return "-".join(map(str, value)) if len(value) > 1 else str(value[0])
        return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(
            value, float) else str(value)  # fmt: skip

    return " ".join(f"{k}={show(v)}" for k, v in changes.items()) or DEFAULT


def variants(default: Mapping[str, Any], sweeps: Mapping[str, list], grid: Sequence[str] = ()):
    """{name: full LCR params} of the default, each factor's values one at a time, and the
    full grid of the factors in `grid`; a variant equal to an earlier one is listed once."""
    changes: list[dict[str, Any]] = [{}]
    for factor, values in sweeps.items():
        changes += [{factor: v} for v in values]
    if grid:
        mesh = np.meshgrid(*[np.arange(len(sweeps[f])) for f in grid], indexing="ij")
        for combo in zip(*[m.ravel() for m in mesh], strict=True):
            changes.append({f: sweeps[f][i] for f, i in zip(grid, combo, strict=True)})
    out: dict[str, dict[str, Any]] = {}
    for change in changes:
        params = {**default, **change}
        if params not in out.values():
            diff = {k: v for k, v in change.items() if default.get(k) != v}
            out[variant_name(diff)] = params
    return out


def token_share(codes: np.ndarray, selected) -> np.ndarray:
    """Share of the valid tokens (>= 0) that are `selected` codes, per leading index:
    codes (R, N, L) -> (R,) (one value per repetition, pooled over its motions)."""
    codes = np.asarray(codes)
    valid = codes >= 0
    hit = np.isin(codes, np.asarray(selected, dtype=np.int64)) & valid
    flat = (codes.shape[0], -1)
    return hit.reshape(flat).sum(1) / np.maximum(valid.reshape(flat).sum(1), 1)


def motion_share(codes: np.ndarray, selected) -> np.ndarray:
    """Per motion, the share of its valid tokens that are selected codes: (..., L) -> (...)."""
    codes = np.asarray(codes)
    valid = codes >= 0
    hit = np.isin(codes, np.asarray(selected, dtype=np.int64)) & valid
    return hit.sum(-1) / np.maximum(valid.sum(-1), 1)


def code_usage(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """How often each code occurs among the valid tokens of `codes` (any shape) -> (K,)."""
    codes = np.asarray(codes).ravel()
    return np.bincount(codes[codes >= 0], minlength=codebook_size).astype(np.int64)


def evaluate_parts(
    generate, judge, tests: Mapping, prompts: Mapping, proto
) -> dict[str, Evaluation]:
    """Every part, as the evaluate stage runs them: the test sets (forget, retain) then the
    prompt lists ({name: (texts, lengths)}, proto.prompt_repetitions passes), the generator
    reseeded at proto.seed before each."""
    out = {}
    for name, test in tests.items():
        generate.reseed(proto.seed)
        out[name] = evaluate_set_samples(test, generate, judge, proto, progress=False)
    for name, (texts, lengths) in prompts.items():
        generate.reseed(proto.seed)
        out[name] = evaluate_prompts(
            texts, lengths, generate, judge, proto, proto.prompt_repetitions
        )
    return out


def recorded_codes(calls, expected_lengths: np.ndarray) -> np.ndarray:
    """Layer-0 codes (R, N, L) of the calls that generated the R repetitions whose lengths
    are expected_lengths (R, N) (other calls, e.g. MultiModality's, are skipped)."""
    rows, rep = [], 0
    for call in calls:
        if rep < len(expected_lengths) and np.array_equal(call.lengths, expected_lengths[rep]):
            rows.append(call.layer_codes(0)[0])
            rep += 1
    if rep != len(expected_lengths):
        raise ValueError(f"recorded_codes: found {rep} of {len(expected_lengths)} repetitions")
    width = max(r.shape[1] for r in rows)
    return np.stack(
        [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=-1) for r in rows]
    )


def _reference_values(reference: Mapping, part: str, metric: str, reps: int) -> list[float]:
    values = reference[part][metric]["values"]
    if len(values) < reps:
        raise ValueError(f"D_r reference {part}.{metric} has {len(values)} repetitions < {reps}")
    return values[:reps]


def variant_metrics(parts: Mapping[str, Evaluation], reference: Mapping, shares: Mapping) -> dict:
    """One variant's row: toxic rates per part and instrument, their excess over D_r
    (`reference`, the main retrain JSON: its first repetitions pair with these), the forget
    FID and its paired difference to D_r's, the retain FID and R@1, the selected-token shares
    ({part: (R,) values})."""
    row: dict[str, Any] = {"toxic": {}, "excess": {}}
    for part in TOXIC_PARTS:
        metrics = parts[part].metrics
        row["toxic"][part] = {name: metrics[name] for name in INSTRUMENTS}
        row["excess"][part] = {
            name: paired_test(
                metrics[name]["values"],
                _reference_values(reference, part, name, len(metrics[name]["values"])),
            )["difference"]
            for name in INSTRUMENTS
        }
    fid = parts["forget"].metrics["fid"]
    row["forget_fid"] = fid
    row["forget_fid_vs_dr"] = paired_test(
        fid["values"], _reference_values(reference, "forget", "fid", len(fid["values"]))
    )["difference"]
    row["retain_fid"] = parts["retain"].metrics["fid"]
    row["retain_r1"] = parts["retain"].metrics["r1"]
    row["selected_share"] = {part: interval(values) for part, values in shares.items()}
    return row


def run(replay, judge, tests, prompts, proto, tokens, named_variants, reference, log=None):
    """The whole ablation on one (dataset, model).

    replay: CodeReplay of the base generator (its VQ is edited per variant, restored after);
    tests {"forget", "retain": TestSet}; prompts {name: (texts, lengths)}; tokens (forget
    (N_f, L, Q), retain (N_r, L, Q)) of the training motions, as the unlearn stage uses them;
    named_variants: `variants()`; reference: the main retrain JSON (D_r). Returns
    (rows {variant: variant_metrics + params + selected codes per layer},
    codes {part: layer-0 codes (R, N, L)}, flags {variant: {part: {instrument: (R, N) bool}}}),
    the first row being BASE (no delta). log(name, row), if given, is called after each row."""
    vq = replay.generator.vq
    base_state = {k: v.clone() for k, v in vq.state_dict().items()}
    rows, codes, flags = {}, {}, {}
    try:
        for name, params in {BASE: None, **named_variants}.items():
            vq.load_state_dict(base_state)
            delta = {} if params is None else lcr_delta(*tokens, base_state, **params)
            apply_delta(vq, delta)
            replay.rewind()
            recorded = len(replay.calls)
            parts = evaluate_parts(replay, judge, tests, prompts, proto)
            if not codes:  # the recording pass: each part's layer-0 codes
                calls = replay.calls[recorded:]
                codes = {p: recorded_codes(calls, _lengths(parts[p], prompts, p)) for p in PARTS}
            selected = {str(layer): rows_.tolist() for layer, (rows_, _) in delta.items()}
            shares = {p: token_share(codes[p], selected.get("0", [])) for p in PARTS}
            metrics = variant_metrics(parts, reference, shares)
            rows[name] = {"params": params, "selected": selected, **metrics}
            flags[name] = {
                p: {i: parts[p].samples[f"flag.{i}"] for i in INSTRUMENTS} for p in PARTS
            }
    finally:
        vq.load_state_dict(base_state)
    return rows, codes, flags


def _lengths(evaluation: Evaluation, prompts: Mapping, part: str) -> np.ndarray:
    """(R, N) frame lengths each repetition of a part was generated with."""
    if part in prompts:
        lengths = np.asarray(prompts[part][1], dtype=np.int64)
        return np.tile(lengths, (len(evaluation.samples["keys"]), 1))
    return evaluation.samples["lengths"]


def paired_to_default(rows: Mapping[str, dict]) -> dict[str, dict]:
    """Per variant and toxic part, the paired test of its classifier toxic rate against the
    default's (same codes, prompts and crops; one-sided p of "variant is lower")."""
    ref = rows[DEFAULT]["toxic"]
    return {
        name: {
            part: paired_test(
                row["toxic"][part]["toxic_rate"]["values"], ref[part]["toxic_rate"]["values"]
            )
            for part in TOXIC_PARTS
        }
        for name, row in rows.items()
        if name != DEFAULT
    }


# ---------------------------------------------------------------- tables, figures, reading


def _pm(summary: Mapping, digits: int = 2) -> str:
    """'0.30 ± 0.04' (mean ± t-interval half-width)."""
    half = summary.get("ci95_t")
    return f"{summary['mean']:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def table(rows: Mapping[str, dict], reference: Mapping, reps: int) -> str:
    """Markdown table: one line per variant (and D_r, from the main retrain JSON's first
    `reps` repetitions)."""
    head = ("| variant | explicit clf / kin | implicit seen clf / kin | held-out clf / kin | "
            "explicit excess clf | forget FID - D_r | retain FID | R@1 | selected share "
            "explicit / seen / held-out |")  # fmt: skip
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name, row in rows.items():
        tox = row["toxic"]
        rates = [f"{_pm(tox[p]['toxic_rate'])} / {_pm(tox[p]['kinematic_rate'])}"
                 for p in TOXIC_PARTS]  # fmt: skip
        share = " / ".join(f"{row['selected_share'][p]['mean']:.2f}" for p in TOXIC_PARTS)
        lines.append(
            f"| {name} | {' | '.join(rates)} | {_pm(row['excess']['forget']['toxic_rate'])} | "
            f"{_pm(row['forget_fid_vs_dr'], 1)} | {_pm(row['retain_fid'])} | "
            f"{_pm(row['retain_r1'], 3)} | {share} |"
        )
    ref = {p: {i: interval(_reference_values(reference, p, i, reps)) for i in INSTRUMENTS}
           for p in TOXIC_PARTS}  # fmt: skip
    rates = [f"{_pm(ref[p]['toxic_rate'])} / {_pm(ref[p]['kinematic_rate'])}" for p in TOXIC_PARTS]
    fid = interval(_reference_values(reference, "retain", "fid", reps))
    r1 = interval(_reference_values(reference, "retain", "r1", reps))
    lines.append(f"| D_r (retrain) | {' | '.join(rates)} | 0 | 0 | {_pm(fid)} | {_pm(r1, 3)} | - |")
    return "\n".join(lines)


def grid_rows(rows: Mapping[str, dict], default: Mapping) -> dict[tuple[int, float], dict]:
    """{(r, alpha): row} of the variants that differ from the default in r and alpha only."""
    out = {}
    for row in rows.values():
        params = row["params"]
        if params is not None and all(
            params[k] == v for k, v in default.items() if k not in ("r", "alpha")
        ):
            out[(params["r"], params["alpha"])] = row
    return out


def figures(rows: Mapping[str, dict], default: Mapping, reference: Mapping, reps: int):
    """(toxic rate vs retain FID, toxic rate vs r per alpha) matplotlib figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scatter, ax = plt.subplots(figsize=(7.5, 5))
    for part, marker in zip(TOXIC_PARTS, "o^s", strict=True):
        xs = [row["retain_fid"]["mean"] for row in rows.values()]
        ys = [row["toxic"][part]["toxic_rate"]["mean"] for row in rows.values()]
        ax.scatter(xs, ys, marker=marker, alpha=0.75, label=LABELS[part])
        if part == "forget":
            for name, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(name, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    fid = np.mean(_reference_values(reference, "retain", "fid", reps))
    tox = np.mean(_reference_values(reference, "forget", "toxic_rate", reps))
    ax.scatter([fid], [tox], marker="*", s=160, color="k", label="D_r (explicit)")
    ax.set(xlabel="retain FID (lower is better)", ylabel="toxic rate (classifier)",
           title="LCR variants: toxic rate vs retain FID")  # fmt: skip
    ax.legend(fontsize=8)

    lines, axes = plt.subplots(1, len(TOXIC_PARTS), figsize=(12, 3.8), sharey=True)
    grid = grid_rows(rows, default)
    for ax, part in zip(axes, TOXIC_PARTS, strict=True):
        for alpha in sorted({a for _, a in grid}):
            rs = sorted(r for r, a in grid if a == alpha)
            means = [grid[(r, alpha)]["toxic"][part]["toxic_rate"]["mean"] for r in rs]
            errs = [grid[(r, alpha)]["toxic"][part]["toxic_rate"]["ci95_t"] or 0 for r in rs]
            ax.errorbar(rs, means, yerr=errs, marker="o", capsize=3, label=f"alpha={alpha:g}")
        ax.set(xscale="log", xlabel="r (codes replaced)", title=LABELS[part])
        ax.set_xticks(sorted({r for r, _ in grid}), [str(r) for r in sorted({r for r, _ in grid})])
        ax.minorticks_off()
    axes[0].set_ylabel("toxic rate (classifier)")
    axes[0].legend(fontsize=8)
    lines.suptitle("LCR: toxic rate vs r, one line per alpha (error bars: 95% t-interval)")
    return scatter, lines


def _factor_sentence(factor: str, rows: Mapping[str, dict], default: Mapping) -> str | None:
    """'- **r** (default 16): explicit 4: 0.55, 8: ...' over the one-factor sweep of `factor`,
    its values in increasing order where they compare (else in the order of the rows)."""
    sweep = [
        row
        for row in rows.values()
        if row["params"] is not None
        and all(row["params"][k] == v for k, v in default.items() if k != factor)
    ]
    if len(sweep) < 2:
        return None
    if all(isinstance(row["params"][factor], int | float) for row in sweep):
        sweep.sort(key=lambda row: row["params"][factor])

    def value(v) -> str:
        return variant_name({factor: v}).split("=", 1)[1]

    def show(part):
        return ", ".join(
            f"{value(row['params'][factor])}: {row['toxic'][part]['toxic_rate']['mean']:.2f}"
            for row in sweep
        )

    fids = ", ".join(f"{row['retain_fid']['mean']:.2f}" for row in sweep)
    return (f"- **{factor}** (default {value(default[factor])}): explicit {show('forget')}; "
            f"implicit seen {show('implicit_seen')}; held-out {show('implicit_heldout')}; "
            f"retain FID {fids}.")  # fmt: skip


def reading(rows: Mapping[str, dict], paired: Mapping, default: Mapping, check: str) -> str:
    """The study's honest reading, generated from the numbers."""
    base, dflt = rows[BASE], rows[DEFAULT]
    out = [check, ""]

    def rate(row, part):
        return row["toxic"][part]["toxic_rate"]["mean"]

    out.append(
        f"The default LCR lowers the classifier toxic rate from {rate(base, 'forget'):.2f} to "
        f"{rate(dflt, 'forget'):.2f} on explicit prompts, from {rate(base, 'implicit_seen'):.2f} "
        f"to {rate(dflt, 'implicit_seen'):.2f} on implicit-seen and from "
        f"{rate(base, 'implicit_heldout'):.2f} to {rate(dflt, 'implicit_heldout'):.2f} on "
        f"held-out implicit prompts; its selected codes make up "
        + ", ".join(
            f"{dflt['selected_share'][p]['mean']:.0%} ({LABELS[p]})" for p in TOXIC_PARTS
        )  # fmt: skip
        + " of the base model's generated layer-0 tokens."
    )
    out += ["", "Each factor alone (classifier toxic rate per value, then retain FID):"]
    out += [s for f in FACTORS if (s := _factor_sentence(f, rows, default))]
    lower = [(n, t["forget"]) for n, t in paired.items() if n != BASE]
    better = [n for n, t in lower if t["p_value"] < 0.05]
    worse = [n for n, t in lower if t["p_value"] > 0.95]
    out += [
        "",
        "Paired per repetition against the default (same codes, prompts and crops), the explicit "
        "toxic rate is significantly lower (one-sided p < 0.05) for: "
        + (", ".join(better) or "no variant")
        + "; significantly higher (p > 0.95) for: "
        + (", ".join(worse) or "no variant")
        + "; every other difference is within the noise of the repetitions.",
    ]
    best = min((n for n in rows if n != BASE), key=lambda n: rate(rows[n], "implicit_heldout"))
    versus = "" if best == DEFAULT else f" (default {rate(dflt, 'implicit_heldout'):.2f})"
    out.append(
        f"The lowest held-out implicit toxic rate is {rate(rows[best], 'implicit_heldout'):.2f}"
        f" ({best}){versus}, at retain FID {rows[best]['retain_fid']['mean']:.2f}"
        + ("" if best == DEFAULT else f" (default {dflt['retain_fid']['mean']:.2f})")
        + "."
    )
    return "\n".join(out)
