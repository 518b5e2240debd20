"""The benchmark report: metrics JSON files -> markdown tables like the paper's Table 1, plots.

Input: metrics/<ds>/<model>/<method>.json written by the evaluate stages (per part and metric
{"mean", "ci95", "ci95_t", "values"}, the "excess" block of rates over D_r, "meta"),
metrics/<ds>/real.json (the ground-truth "Real motion" row) and, when present, the per-sample
arrays eval/<ds>/<model>/<method>.npz for the paired tests. Output per dataset and model: a
toxicity table (raw and excess rate per detector and prompt part) and a quality table (the
paper's columns), a legend, full tables with every metric, an instrument-agreement section, PNG
scatter plots and a flat numeric JSON summary for `dvc metrics diff` (DVC skips the `values`
lists and nulls of the method JSONs; the summary holds numbers only, no timings). Expected
files that are absent are listed in the report, never skipped silently.

Ranking: per column, the candidate best of the ranked methods (base, FT, FT on all data, UCE,
RECE, LCR; Real motion and D_r are references) by the value as printed is bold only when a
paired test shows it better than every other ranked method at the 5% level; methods it does not
beat significantly are its statistical ties, marked "≈" (the candidate too). The test is a
paired bootstrap on the per-sample arrays (same prompts, lengths and crops for every method),
else a paired t test over the per-repetition values. "→ D_r" columns prefer closeness to the
D_r row (the model retrained without the forget set); "↓"/"↑" lower/higher values.

Over 450 lines because loading, ranking and rendering share the Results/Column types and every
table is built from them; the instrument, VQ and LCR sections live in report_sections.py.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmu.eval import stats
from hmu.eval.report_sections import (
    instruments_section,
    lcr_section,
    markdown_table,
    vq_section,
)
from hmu.eval.seeds import seeds_section
from hmu.eval.summary import summary_lines
from hmu.eval.variants import variants_sections
from hmu.io import write_json, write_text
from hmu.viz.plots import scatter_plot

METHOD_ORDER = ("retrain", "base", "finetune", "finetune_all", "uce", "rece", "lcr")
# The report's inputs that commands write, not stages (`hmu seeds`, `hmu variants`): committed
# with the results they were collected from, and listed as deps of the report stage.
HAND_WRITTEN = ("metrics/seeds.json", "metrics/precision.json", "metrics/refine.json")
RANKED_METHODS = ("base", "finetune", "finetune_all", "uce", "rece", "lcr")
REFERENCE = "retrain"  # D_r
MODEL_NAMES = {"momask": "MoMask", "bamm": "BAMM"}
TEST_PARTS = ("forget", "retain")
PART_ORDER = ("forget", "retain", "implicit", "implicit_seen", "implicit_heldout")
NOT_PARTS = ("meta", "excess", "instruments", "absent")  # instruments: real.json's
ARROWS = {"target": "→ D_r", "down": "↓", "up": "↑", None: ""}
DECIMALS = 3
N_BOOT = 1000
NCS_K = (1, 3, 5, 10)  # hmu.eval.protocol.NCS_K: columns of the `ncs` sample array
TIE = "≈"

METRIC_TITLES = {
    "fid": "FID",
    "mm_notox": "MM-Notox",
    "mm_dist": "MM-Dist",
    "diversity": "Diversity",
    "multimodality": "MultiModality",
    "r1": "R@1",
    "r2": "R@2",
    "r3": "R@3",
    "prompts": "Prompts",
}
DETECTOR_TITLES = {"toxic_rate": "classifier", "kinematic_rate": "kinematic"}
PART_TITLES = {
    "forget": "Explicit",
    "retain": "Retain",
    "implicit": "Implicit",
    "implicit_seen": "Implicit-seen",
    "implicit_heldout": "Implicit-held-out",
}
# Preferred column order of the full tables; metrics not listed follow alphabetically.
FULL_ORDER = (
    "fid", "mm_notox", "mm_dist", "diversity", "multimodality", "r1", "r2", "r3", "toxic_rate",
    "kinematic_rate", "ncs@1", "ncs@3", "ncs@5", "ncs@10", "prompts",
)  # fmt: skip
# Goal per test set and quality metric: "target" = closer to D_r, "down"/"up", None = not ranked.
# MM-Notox is "target": detoxify keeps "... forward with the right leg", so a kick still
# matches the detoxified caption best and a lower distance is not better.
GOALS = {
    "forget": {
        "fid": "target", "mm_notox": "target", "mm_dist": "target", "diversity": "target",
        "multimodality": "target", "r1": "target", "r2": "target", "r3": "target",
    },
    "retain": {
        "fid": "down", "mm_dist": "down", "diversity": "target", "multimodality": "up",
        "r1": "up", "r2": "up", "r3": "up",
    },
}  # fmt: skip
QUALITY_COLUMNS = (
    ("forget", "fid"), ("forget", "mm_notox"), ("forget", "diversity"), ("forget", "r1"),
    ("retain", "fid"), ("retain", "mm_dist"), ("retain", "diversity"), ("retain", "r1"),
)  # fmt: skip


def is_rate(metric: str) -> bool:
    """A detector's rate ("toxic_rate", "kinematic_rate", ...)."""
    return metric.endswith("_rate")


def metric_goal(part: str, metric: str) -> str | None:
    """Which direction is better for a metric of a part (see GOALS): rates and NCS@k are
    lower-better on every part but the retain set (where they are not ranked)."""
    if is_rate(metric) or metric.startswith("ncs@"):
        return None if part == "retain" else "down"
    return GOALS.get(part, {}).get(metric)


def part_title(part: str) -> str:
    """'forget' -> 'Explicit', 'implicit_heldout' -> 'Implicit-held-out'."""
    return PART_TITLES.get(part, part.replace("_", "-").capitalize())


def metric_title(metric: str) -> str:
    """Display name of a metric key ('r1' -> 'R@1', 'ncs@3' -> 'NCS@3', 'toxic_rate' ->
    'classifier rate')."""
    if metric.startswith("ncs@"):
        return metric.upper()
    if is_rate(metric):
        return f"{detector_title(metric)} rate"
    return METRIC_TITLES.get(metric, metric)


def detector_title(metric: str) -> str:
    return DETECTOR_TITLES.get(metric, metric.removesuffix("_rate").replace("_", " "))


@dataclass(frozen=True)
class Column:
    """One table column: a metric of one part, or (excess) its difference to D_r."""

    part: str
    metric: str
    goal: str | None
    excess: bool = False

    def title(self, with_part: bool = True) -> str:
        """e.g. 'Forget FID → D_r', 'Explicit classifier excess ↓'."""
        if is_rate(self.metric):
            name = f"{detector_title(self.metric)} {'excess' if self.excess else 'rate'}"
        else:
            name = metric_title(self.metric)
        if with_part:
            toxic = is_rate(self.metric) or self.metric.startswith("ncs@")
            prefix = part_title(self.part) if toxic else self.part.capitalize()
            name = f"{prefix} {name}"
        return f"{name} {ARROWS[self.goal]}".strip()

    def raw(self) -> Column:
        """The column whose values the excess column shifts (same ranking, same test)."""
        return Column(self.part, self.metric, self.goal)


@dataclass
class Results:
    """Everything the report reads: runs[(ds, model, method)], real[ds], missing files,
    per-sample arrays (loaded on demand) and the ranking of every column (cached)."""

    metrics_dir: Path
    datasets: list[str]
    models: list[str]
    methods: list[str]
    samples_dir: Path | None = None
    n_boot: int = N_BOOT
    runs: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    real: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, list[Path]] = field(default_factory=dict)  # per dataset
    # left out on purpose ({"absent": reason}: no D_r reference), per (ds, model, method)
    absent: dict[tuple[str, str, str], str] = field(default_factory=dict)
    marks: dict[tuple[str, str, Column], dict[str, str]] = field(default_factory=dict)
    tests: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _samples: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    def run_methods(self, ds: str, model: str) -> list[str]:
        return [m for m in self.methods if (ds, model, m) in self.runs]

    def samples(self, ds: str, model: str, method: str):
        """The method's .npz (lazy NpzFile) or None when absent."""
        key = (ds, model, method)
        if key not in self._samples:
            path = None if self.samples_dir is None else self.samples_dir / ds / model
            path = None if path is None else path / f"{method}.npz"
            self._samples[key] = np.load(path) if path is not None and path.exists() else None
        return self._samples[key]


def row_label(model: str, method: str) -> str:
    """The paper's row naming: 'MoMask D_r', 'MoMask', 'MoMask FT', 'MoMask w/ LCR'."""
    name = MODEL_NAMES.get(model, model)
    special = {
        "retrain": f"{name} D_r",
        "base": name,
        "finetune": f"{name} FT",
        "finetune_all": f"{name} FT (all data)",
    }
    return special.get(method, f"{name} w/ {method.upper()}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _entry(data: Mapping[str, Any] | None, col: Column) -> Any:
    """The JSON entry behind a cell: data[part][metric] or data["excess"][part][metric]."""
    if not data:
        return None
    source = (data.get("excess") or {}) if col.excess else data
    return source.get(col.part, {}).get(col.metric)


def _mean(entry: Any) -> float | None:
    """Mean of a metric entry ({"mean", ...} or a plain number); None when absent."""
    mean = entry.get("mean") if isinstance(entry, Mapping) else entry
    return None if mean is None else float(mean)


def _values(entry: Any) -> list[float] | None:
    return entry.get("values") if isinstance(entry, Mapping) else None


def format_cell(entry: Any) -> str:
    """'mean ± ci95_t' with 3 decimals; '(single pass)' for a value measured once; 'mean ± n/a'
    for a file without t-intervals; a plain number as is; '–' when absent."""
    mean = _mean(entry)
    if mean is None:
        return "–"
    if isinstance(entry, int) and not isinstance(entry, bool):
        return str(entry)  # counts such as the number of implicit prompts
    if not isinstance(entry, Mapping):
        return f"{mean:.{DECIMALS}f}"
    if "ci95_t" not in entry:
        return f"{mean:.{DECIMALS}f} ± n/a"
    if entry["ci95_t"] is None:
        return f"{mean:.{DECIMALS}f} (single pass)"
    return f"{mean:.{DECIMALS}f} ± {entry['ci95_t']:.{DECIMALS}f}"


def _loss(value: float, goal: str, reference: float | None) -> float:
    """Lower is better, compared as printed (3 decimals)."""
    shown = round(value, DECIMALS)
    if goal == "target":
        return round(abs(shown - round(reference, DECIMALS)), DECIMALS + 3)
    return shown if goal == "down" else -shown


def candidate_best(
    values: Mapping[str, float | None], goal: str | None, reference: float | None = None
) -> str | None:
    """The best key by value as printed (first in order among equals); None without a goal, a
    reference for 'target', or when the finite values do not differ."""
    if goal is None or (goal == "target" and not _finite(reference)):
        return None
    losses = {k: _loss(v, goal, reference) for k, v in values.items() if _finite(v)}
    if len(set(losses.values())) < 2:  # one value, or all equal: nothing to single out
        return None
    return min(losses, key=losses.get)


def significance_marks(best: str, p_values: Mapping[str, float]) -> dict[str, str]:
    """{method: "best"} when the candidate beats every other (p < ALPHA), else {method: "tie"}
    for the candidate and every method it does not beat; {} when it beats none (all tied)."""
    tied = {m for m, p in p_values.items() if not p < stats.ALPHA}  # NaN: no test, a tie
    if not tied:
        return {best: "best"}
    if len(tied) == len(p_values):
        return {}
    return {m: "tie" for m in (best, *sorted(tied))}


def _read_json(path: Path) -> dict[str, Any]:
    """Parse a metrics file; ValueError naming the file and key when it is not a JSON object
    of parts whose entries are numbers or {"mean": number, ...}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for part, entries in data.items():
        if part == "absent" or (part == "excess" and entries is None):  # left out, reason
            continue
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: '{part}' must be an object")
        if part in ("meta", "instruments"):
            continue
        groups = entries.items() if part == "excess" else [(part, entries)]
        for name, group in groups:
            for metric, entry in (group if isinstance(group, dict) else {"?": group}).items():
                _check_entry(path, f"{name}.{metric}", entry)
    return data


def _check_entry(path: Path, where: str, entry: Any) -> None:
    if isinstance(entry, dict):
        ci_t = entry.get("ci95_t")
        ok = (_is_number(entry.get("mean")) and _is_number(entry.get("ci95", 0.0))
              and (ci_t is None or _is_number(ci_t))
              and all(_is_number(v) for v in entry.get("values", [])))  # fmt: skip
    else:
        ok = _is_number(entry)
    if not ok:
        raise ValueError(
            f"{path}: {where} = {entry!r} is neither a number nor "
            '{"mean": number, "ci95": number, "ci95_t": number or null, "values": [numbers]}'
        )


def _check_names(kind: str, names: Sequence[str], allowed: Sequence[str] | None = None) -> list:
    if isinstance(names, str) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"report {kind}: expected a non-empty list of names, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"report {kind}: duplicate names in {list(names)}")
    unknown = [n for n in names if allowed is not None and n not in allowed]
    if unknown:
        raise ValueError(f"report {kind}: unknown {unknown}; known: {list(allowed)}")
    return list(names)


def load_results(
    metrics_dir: str | os.PathLike,
    datasets: Sequence[str],
    models: Sequence[str],
    methods: Sequence[str] = METHOD_ORDER,
    samples_dir: str | os.PathLike | None = None,
    n_boot: int = N_BOOT,
) -> Results:
    """Read every expected metrics file that exists and note the ones that do not.

    A file whose meta names another dataset/model/method than its path raises ValueError
    (a wiring mistake in the pipeline would otherwise put numbers in the wrong row). Files
    without an "excess" block get it from the D_r file (stats.excess_over_reference)."""
    results = Results(
        Path(metrics_dir),
        _check_names("datasets", datasets),
        _check_names("models", models),
        _check_names("methods", methods, METHOD_ORDER),
        None if samples_dir is None else Path(samples_dir),
        n_boot,
    )
    for ds in results.datasets:
        missing = results.missing.setdefault(ds, [])
        real_path = results.metrics_dir / ds / "real.json"
        if real_path.exists():
            results.real[ds] = _read_json(real_path)
        else:
            missing.append(real_path)
        for model in results.models:
            for method in results.methods:
                path = results.metrics_dir / ds / model / f"{method}.json"
                if not path.exists():
                    missing.append(path)
                    continue
                data = _read_json(path)
                if "absent" in data:  # left out on purpose: no row, not missing
                    results.absent[(ds, model, method)] = data["absent"]
                    continue
                meta = data.get("meta", {})
                for key, want in (("dataset", ds), ("model", model), ("method", method)):
                    if key in meta and meta[key] != want:
                        raise ValueError(f"{path}: meta.{key} is {meta[key]!r}, expected {want!r}")
                results.runs[(ds, model, method)] = data
            reference = results.runs.get((ds, model, REFERENCE))
            for method in results.run_methods(ds, model):
                data = results.runs[(ds, model, method)]
                if "excess" not in data and reference is not None:
                    data["excess"] = stats.excess_over_reference(data, reference)
    return results


# --- ranking ---


def _sample_array(col: Column) -> tuple[str, Any] | None:
    """(array name in the .npz, how to take the column's per-sample values) or None."""
    part, metric = col.part, col.metric
    if is_rate(metric):
        return f"{part}.flag.{metric}", None
    if metric in ("r1", "r2", "r3"):
        return f"{part}.hits", int(metric[1]) - 1
    if metric.startswith("ncs@") and int(metric[4:]) in NCS_K:
        return f"{part}.ncs", NCS_K.index(int(metric[4:]))
    names = {"mm_dist": "match_dist", "mm_notox": "notox_dist", "fid": "gen_emb",
             "diversity": "gen_emb"}  # fmt: skip
    return (f"{part}.{names[metric]}", None) if metric in names else None


def _statistic(col: Column, npz) -> stats.Statistic:
    if col.metric == "fid":
        return stats.frechet_statistic(npz[f"{col.part}.real_emb"])
    if col.metric == "diversity":
        return stats.diversity_statistic
    return stats.mean_statistic


def _bootstrap_p_values(
    results: Results,
    ds: str,
    model: str,
    col: Column,
    best: str,
    others: list[str],
    reference: float | None = None,
) -> dict[str, float] | None:
    """p-values of "best beats m" from the paired bootstrap on the .npz arrays; None when an
    array is missing or the samples do not pair (different keys). Goal 'target': the D_r
    samples resampled alongside, else the number `reference` (no D_r: the Real motion row)."""
    wanted = _sample_array(col)
    methods = [best, *others]
    files = {m: results.samples(ds, model, m) for m in methods}
    with_reference = col.goal == "target" and (ds, model, REFERENCE) not in results.absent
    ref_file = results.samples(ds, model, REFERENCE) if with_reference else None
    if wanted is None or any(f is None for f in files.values()):
        return None
    if ref_file is not None:
        files[REFERENCE] = ref_file
    name, index = wanted
    keys_name = f"{col.part}.keys"
    if any(name not in f or keys_name not in f for f in files.values()):
        return None
    keys = files[best][keys_name]
    if any(not np.array_equal(f[keys_name], keys) for f in files.values()):
        return None
    arrays = {m: f[name] if index is None else f[name][..., index] for m, f in files.items()}
    arrays = {m: a.astype(np.float64) for m, a in arrays.items()}
    boot = stats.bootstrap(arrays, _statistic(col, files[best]), results.n_boot, seed=0)
    reference = boot.get(REFERENCE, reference)
    return {m: stats.bootstrap_p_value(boot[best], boot[m], col.goal, reference) for m in others}


def _t_p_values(
    results: Results,
    ds: str,
    model: str,
    col: Column,
    best: str,
    others: list[str],
    reference: float | None = None,
) -> dict[str, float] | None:
    """p-values of "best beats m" from a paired t test over the per-repetition values. Goal
    'target': D_r's values of the same repetitions, else the number `reference`."""
    values = {m: _values(_entry(results.runs[(ds, model, m)], col)) for m in (best, *others)}
    lengths = {len(v) if v else 0 for v in values.values()}
    if len(lengths) != 1 or lengths.pop() < 2:
        return None
    if col.goal == "target":
        ref_values = _values(_entry(results.runs.get((ds, model, REFERENCE)), col))
        same = ref_values is not None and len(ref_values) == len(values[best])
        reference = ref_values if same else reference
    return {m: stats.paired_t_p_value(values[best], values[m], col.goal, reference)
            for m in others}  # fmt: skip


def column_marks(results: Results, ds: str, model: str, col: Column) -> dict[str, str]:
    """{method: "best" | "tie"} for one column (cached). Excess columns share the raw rate
    column's marks: subtracting D_r shifts every method alike."""
    if col.excess:
        return column_marks(results, ds, model, col.raw())
    key = (ds, model, col)
    if key in results.marks:
        return results.marks[key]
    runs = {m: results.runs[(ds, model, m)] for m in results.run_methods(ds, model)}
    ranked = {m: _mean(_entry(d, col)) for m, d in runs.items() if m in RANKED_METHODS}
    ranked = {m: v for m, v in ranked.items() if _finite(v)}
    reference = _mean(_entry(runs.get(REFERENCE), col))
    if reference is None and col.part == "retain":  # no D_r: the real retain motions
        reference = _mean(_entry(results.real.get(ds), col))
    best = candidate_best(ranked, col.goal, reference)
    marks: dict[str, str] = {}
    if best is not None:
        others = [m for m in ranked if m != best]
        tests = results.tests.setdefault((ds, model), {})
        p_values = _bootstrap_p_values(results, ds, model, col, best, others, reference)
        how = "bootstrap"
        if p_values is None:
            p_values = _t_p_values(results, ds, model, col, best, others, reference)
            how = "t" if p_values is not None else "none"
        tests[f"{col.part}.{col.metric}"] = how
        marks = significance_marks(best, p_values) if p_values is not None else {}
    results.marks[key] = marks
    return marks


# --- markdown rendering ---


def _mark(cell: str, mark: str | None) -> str:
    if mark == "best":
        return f"**{cell}**"
    return f"{cell} {TIE}" if mark == "tie" else cell


def _table_rows(
    results: Results, ds: str, model: str, columns: Sequence[Column]
) -> list[list[str]]:
    """Rows Real motion, D_r, base, FT, FT (all data), UCE, RECE, LCR (those present)."""
    marks = [column_marks(results, ds, model, col) for col in columns]
    rows = []
    if ds in results.real and any(c.part in TEST_PARTS and not c.excess for c in columns):
        real = results.real[ds]
        rows.append(["Real motion"] + [format_cell(_entry(real, c)) for c in columns])
    for method in results.run_methods(ds, model):
        data = results.runs[(ds, model, method)]
        label = row_label(model, method) + (" (reference)" if method == REFERENCE else "")
        cells = [
            _mark(format_cell(_entry(data, col)), mark.get(method))
            for col, mark in zip(columns, marks, strict=True)
        ]
        rows.append([label, *cells])
    return rows


def _parts(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """Parts found in any of the files, in PART_ORDER then alphabetically."""
    found = {p for data in sources for p in data if p not in NOT_PARTS}
    rank = {p: i for i, p in enumerate(PART_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p, len(rank)), p))


def _metrics_of(sources: Sequence[Mapping[str, Any]], part: str) -> list[str]:
    found = {m for data in sources for m in data.get(part, {})}
    rank = {m: i for i, m in enumerate(FULL_ORDER)}
    return sorted(found, key=lambda m: (rank.get(m, len(rank)), m))


def _sources(results: Results, ds: str, model: str) -> list[dict[str, Any]]:
    return [results.runs[(ds, model, m)] for m in results.run_methods(ds, model)]


def toxicity_columns(results: Results, ds: str, model: str) -> list[Column]:
    """Per toxic part (explicit forget prompts, then every prompt list) and detector: the raw
    rate and the excess over D_r; NCS@3 on the explicit prompts; the retain rates."""
    sources = _sources(results, ds, model)
    columns = []
    for part in (p for p in _parts(sources) if p != "retain"):
        for metric in (m for m in _metrics_of(sources, part) if is_rate(m)):
            columns += [Column(part, metric, "down"), Column(part, metric, "down", excess=True)]
    if any("ncs@3" in data.get("forget", {}) for data in sources):
        columns.append(Column("forget", "ncs@3", "down"))
    columns += [Column("retain", m, None) for m in _metrics_of(sources, "retain") if is_rate(m)]
    return columns


def toxicity_groups(results: Results, ds: str, model: str) -> list[tuple[str, list[Column]]]:
    """The short toxicity tables of the main report, one per detector (classifier first): the
    excess over D_r on every toxic part (the main unlearning number; raw rates are in the full
    tables), NCS@3 with the classifier, the retain rate (false alarms, not ranked)."""
    columns = toxicity_columns(results, ds, model)
    shown = (ds, model, REFERENCE) in results.runs  # excess over D_r, else the raw rates
    groups = []
    for detector in dict.fromkeys(c.metric for c in columns if is_rate(c.metric)):
        group = [c for c in columns
                 if c.metric == detector and (c.excess == shown or c.part == "retain")]  # fmt: skip
        if not groups:
            group[-1:-1] = [c for c in columns if c.metric.startswith("ncs@")]
        groups.append((detector_title(detector), group))
    return groups


def quality_columns() -> list[Column]:
    """The paper's Table 1 columns."""
    return [Column(part, metric, metric_goal(part, metric)) for part, metric in QUALITY_COLUMNS]


def _legend(results: Results, ds: str) -> list[str]:
    """Protocol, the judge's measurements on real motions, how each table was ranked."""
    lines = []
    real_meta = results.real.get(ds, {}).get("meta", {})
    judged = {k: v for k, v in real_meta.items() if _finite(v) and k != "repetitions"}
    if judged:
        text = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in sorted(judged.items()))
        lines.append(f"- Judge on real test motions: {text}.")
    setups: dict[str, list[str]] = {}
    for (d, model, method), data in results.runs.items():
        if d == ds:
            setups.setdefault(_setup_text(data), []).append(f"{model}/{method}")
    if ds in results.real:
        setups.setdefault(_setup_text(results.real[ds]), []).append("real")
    if len(setups) == 1:
        lines.append(f"- Protocol: {next(iter(setups))}.")
    for setup, who in sorted(setups.items()) if len(setups) > 1 else ():
        lines.append(f"- Protocol differs between files: {setup} for {', '.join(who)}.")
    return lines + _prompt_counts(results, ds)


def _setup_text(data: Mapping[str, Any]) -> str:
    meta = data.get("meta", {})
    sizes = meta.get("test_sizes") or {}
    return (
        f"{meta.get('repetitions', '?')} repetitions; test sets: {sizes.get('forget', '?')} "
        f"forget and {sizes.get('retain', '?')} retain motions"
    )


def _prompt_counts(results: Results, ds: str) -> list[str]:
    """One line per prompt list: its number of prompts (all counts when files differ)."""
    counts: dict[str, set] = {}
    for (d, _, _), data in results.runs.items():
        for part, entries in data.items():
            if d == ds and part not in NOT_PARTS and "prompts" in entries:
                counts.setdefault(part, set()).add(entries["prompts"])
    return [
        f"- {part_title(part)} prompts: {' / '.join(str(n) for n in sorted(n_set))}."
        for part, n_set in counts.items()
    ]


def _ranking_note(results: Results, ds: str, model: str) -> str:
    """Which test ranked the table's columns (bootstrap, t test fallback, none)."""
    tests = results.tests.get((ds, model), {})
    by_kind: dict[str, list[str]] = {}
    for column, how in sorted(tests.items()):
        by_kind.setdefault(how, []).append(column)
    parts = []
    if "bootstrap" in by_kind:
        parts.append(f"paired bootstrap ({results.n_boot} resamples) on the per-sample arrays")
    if "t" in by_kind:
        why = "no per-sample arrays" if results.samples_dir is None else "per-sample arrays absent"
        parts.append(
            f"paired t test over repetitions ({why}) for {', '.join(by_kind['t'])}"
            if "bootstrap" in by_kind
            else f"paired t test over repetitions ({why}: fallback)"
        )
    if "none" in by_kind:
        parts.append(
            f"untested (no per-sample arrays and fewer than 2 paired repetition values): "
            f"{', '.join(by_kind['none'])}"
        )
    return "Significance: " + "; ".join(parts) + "." if parts else ""


def _wall_times(results: Results, ds: str) -> list[str]:
    rows = []
    for model in results.models:
        for method in results.methods:
            meta = results.runs.get((ds, model, method), {}).get("meta")
            if meta is None:
                continue
            times = [meta.get("unlearn_seconds"), meta.get("eval_seconds")]
            rows.append(
                [row_label(model, method), *(f"{t:.2f}" if _finite(t) else "–" for t in times)]
            )
    if not rows:
        return []
    return [
        "",
        "Wall time per method:",
        "",
        *markdown_table(["Method", "Unlearn (s)", "Evaluation (s)"], rows),
    ]


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _model_tables(results: Results, ds: str, model: str, plots) -> list[str]:
    name = MODEL_NAMES.get(model, model)
    out = []
    if (ds, model, REFERENCE) in results.absent:
        out += [_no_reference_note(results.absent[(ds, model, REFERENCE)]), ""]
    elif (ds, model, REFERENCE) not in results.runs:
        out += ["_D_r reference missing: → D_r columns are not ranked, no excess rates._", ""]
    groups = [(f"toxicity · {name}", cols) for name, cols in toxicity_groups(results, ds, model)]
    for what, columns in [*groups, ("quality", quality_columns())]:
        out += [f"#### {ds} · {name} · {what}", ""]
        header = ["Method", *(c.title() for c in columns)]
        out += [*markdown_table(header, _table_rows(results, ds, model, columns)), ""]
    note = _ranking_note(results, ds, model)
    out += [note, ""] if note else []
    for caption, link in plots.get((ds, model), ()):
        out += [f"![{caption}]({link})", ""]
    return out


def _no_reference_note(reason: str) -> str:
    """What the tables mean when the D_r reference was left out on purpose."""
    return (
        f'_{reason[:1].upper()}{reason[1:]}. The "→ D_r" columns have no reference. On the '
        "forget set they are not ranked (the real forget motions are the toxic ones, no "
        "target for an unlearned model); on the retain set they are ranked by closeness to "
        "the Real motion row. The toxicity tables show raw rates: there is no excess over "
        "D_r._"
    )


def _dataset_section(
    results: Results, ds: str, plot_links: Mapping[tuple[str, str], Sequence[tuple[str, str]]]
) -> list[str]:
    """Missing files, legend, per model a toxicity and a quality table, wall times."""
    out = ["", f"## {ds}", ""]
    if results.missing[ds]:
        paths = ", ".join(f"`{p.as_posix()}`" for p in results.missing[ds])
        out += [f"**Missing** (rows left out): {paths}", ""]
    out += _legend(results, ds)
    for model in results.models:
        out += ["", f"### {MODEL_NAMES.get(model, model)}", ""]
        if not results.run_methods(ds, model):
            out.append(f"_No metrics for {model} on {ds}._")
            continue
        out += _model_tables(results, ds, model, plot_links)
    return out + _wall_times(results, ds)


def _full_tables(results: Results) -> list[str]:
    """Every metric of every part (and its excess over D_r) per dataset and model."""
    out = ["## Full tables", "", "Every metric per part, with the same ranking rules."]
    for ds in results.datasets:
        for model in (m for m in results.models if results.run_methods(ds, m)):
            sources = _sources(results, ds, model)
            real = [results.real[ds]] if ds in results.real else []
            for part in _parts(sources + real):
                metrics = _metrics_of(sources + (real if part in TEST_PARTS else []), part)
                columns = [Column(part, m, metric_goal(part, m)) for m in metrics]
                columns += [
                    Column(part, c.metric, c.goal, True) for c in columns if is_rate(c.metric)
                ]
                what = "prompts" if part not in TEST_PARTS else "set"
                out += ["", f"### {ds} · {MODEL_NAMES.get(model, model)} · {part} {what}", ""]
                header = ["Method", *(c.title(with_part=False) for c in columns)]
                out += markdown_table(header, _table_rows(results, ds, model, columns))
    return out


# --- instrument agreement ---


def _detectors(results: Results) -> list[str]:
    """Detector rates found in any file, the classifier's first."""
    found = {m for data in results.runs.values() for p, e in data.items()
             if p not in NOT_PARTS for m in e if is_rate(m)}  # fmt: skip
    return sorted(found, key=lambda m: (m != "toxic_rate", m))


def agreement(results: Results) -> dict[tuple[str, str, str, str], tuple[float, int]]:
    """Spearman correlation (rho, rows) between the first detector (the classifier) and each
    other detector over the method rows: per (ds, model, part, detector), and pooled over all
    tables as ("all", "all", part, detector)."""
    detectors = _detectors(results)
    out, pooled = {}, {}
    for ds in results.datasets:
        for model in results.models:
            sources = _sources(results, ds, model)
            for part in (p for p in _parts(sources) if p != "retain"):
                for other in detectors[1:]:
                    pairs = [
                        (
                            _mean(d.get(part, {}).get(detectors[0])),
                            _mean(d.get(part, {}).get(other)),
                        )
                        for d in sources
                    ]
                    pairs = [p for p in pairs if _finite(p[0]) and _finite(p[1])]
                    pooled.setdefault((part, other), []).extend(pairs)
                    if pairs:
                        x, y = zip(*pairs, strict=True)
                        out[(ds, model, part, other)] = (stats.spearman(x, y), len(pairs))
    for (part, other), pairs in pooled.items():
        if not pairs:
            continue
        x, y = zip(*pairs, strict=True)
        out[("all", "all", part, other)] = (stats.spearman(x, y), len(pairs))
    return out


def _opposite_pairs(results: Results, ds: str, model: str, part: str, other: str) -> list[str]:
    """Method pairs the two instruments order oppositely, each with non-overlapping intervals."""
    first = _detectors(results)[0]
    rows = []
    for method in results.run_methods(ds, model):
        data = results.runs[(ds, model, method)].get(part, {})
        a, b = data.get(first), data.get(other)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            rows.append((method, a["mean"], a.get("ci95_t"), b["mean"], b.get("ci95_t")))
    found = []
    for i, (m1, a1, ca1, b1, cb1) in enumerate(rows):
        for m2, a2, ca2, b2, cb2 in rows[i + 1 :]:
            if None in (ca1, ca2, cb1, cb2):
                continue
            clear_a, clear_b = abs(a1 - a2) > ca1 + ca2, abs(b1 - b2) > cb1 + cb2
            if clear_a and clear_b and (a1 - a2) * (b1 - b2) < 0:
                higher = m1 if a1 > a2 else m2
                lower = m2 if higher == m1 else m1
                found.append(
                    f"{row_label(model, higher)} above {row_label(model, lower)} by the "
                    f"{detector_title(first)}, below it by the {detector_title(other)} detector"
                )
    return found


def _agreement_section(results: Results) -> list[str]:
    detectors = _detectors(results)
    out = ["", "## Instrument agreement", ""]
    if len(detectors) < 2:
        found = ", ".join(detectors) or "none"
        return out + [f"One toxicity instrument in the metrics ({found}): nothing to compare."]
    rho = agreement(results)
    first = detector_title(detectors[0])
    out.append(
        f"Spearman rank correlation of the {first}'s rate and each other detector's rate across "
        "the method rows (n = rows), per table and part, and pooled over all tables. They "
        "disagree where the correlation is below 0.5 or a method pair is ordered oppositely "
        "with non-overlapping intervals."
    )
    rank = {p: i for i, p in enumerate(PART_ORDER)}
    columns = sorted({(p, o) for *_, p, o in rho}, key=lambda c: (rank.get(c[0], len(rank)), c))
    header = ["Table", *(f"{part_title(p)}: {detector_title(o)}" for p, o in columns)]
    rows, notes = [], []
    tables = [(ds, m) for ds in results.datasets for m in results.models] + [("all", "all")]
    for ds, model in tables:
        cells = []
        for part, other in columns:
            value, n = rho.get((ds, model, part, other), (float("nan"), 0))
            cells.append(f"{value:.2f} (n={n})" if _finite(value) else f"n/a (n={n})")
            where = "all tables" if ds == "all" else f"{ds} {MODEL_NAMES.get(model, model)}"
            what = f"{part_title(part).lower()} prompts"
            if _finite(value) and value < 0.5:
                notes.append(
                    f"- **Disagreement** on {where}, {what}: the {first} and the "
                    f"{detector_title(other)} detector correlate at only {value:.2f}."
                )
            if ds != "all":
                notes += [f"- **Disagreement** on {where}, {what}: {text}."
                          for text in _opposite_pairs(results, ds, model, part, other)]  # fmt: skip
        if any(n for *_, n in (rho.get((ds, model, p, o), (0, 0)) for p, o in columns)):
            label = "All tables" if ds == "all" else f"{ds} · {MODEL_NAMES.get(model, model)}"
            rows.append([label, *cells])
    out += ["", *markdown_table(header, rows), ""]
    return out + (notes or ["The instruments agree on every table (no disagreement found)."])


def _notes() -> list[str]:
    return [
        "",
        "## Reading the tables",
        "",
        "- Cells: mean ± 95% Student-t interval over the evaluation repetitions of one "
        "training seed (sample std; training-seed variance: section Training seeds); "
        "`(single pass)`: measured in one repetition only, no interval; `± n/a`: the file has "
        "no t-interval; `–`: value not in the file. The method JSONs also keep upstream's "
        "1.96·σ/√n interval (`ci95`) for comparison with published tables.",
        "- → D_r: closer to the D_r row is better (D_r: the same architecture trained on the "
        "retain set only; it never saw toxic motion, so on the forget set an unlearned model "
        "should behave like it). ↓ lower is better, ↑ higher is better, no arrow: not ranked.",
        f"- **Bold**: the best of base, FT, FT (all data), UCE, RECE and LCR, significantly "
        f"better than every other one (paired test, one-sided, 5% level). {TIE}: statistically "
        f"tied with the best (the best itself and every method it does not beat "
        "significantly). No mark in a ranked column: no method stands out. Real motion and D_r "
        "are references and not ranked. Excess columns share the raw rate's ranking.",
        "- Paired test: every method sees the same prompts, lengths and crops in every "
        "repetition, so the bootstrap resamples the same samples for all methods within each "
        "repetition. FID is resampled to first order (each sample's influence on FID); "
        "Diversity over all pairs of drawn samples; rates, R-precision and distances are means "
        "over samples.",
        "- Toxicity: `classifier rate` is the share of generations the toxic-action classifier "
        "flags, `kinematic rate` the share the training-free strike detector flags (when "
        "present). `excess`: the method's rate minus D_r's, paired per repetition, with its "
        "t-interval: the main unlearning number (D_r's own rate is the instrument's floor for "
        "these prompts). Explicit: captions of forget test motions; implicit: prompts without "
        "a toxic keyword (seen: templates from training captions; held-out: templates that "
        "never appear in training). NCS@k: share of motions whose k nearest training captions "
        "contain a toxic keyword. Retain rates: false alarms on safe prompts.",
        "- FT (all data): the FT baseline's extra steps on the full training set; a control "
        'that separates "trained more" from "trained without the forget set".',
        "- MM-Notox keeps the paper's definition (matching distance to the caption with its "
        'toxic words removed) but is ranked → D_r, not ↓: detoxify keeps "... forward with the '
        'right leg", so a kick still matches the detoxified caption best and a lower distance '
        "is not better; a model that unlearned the kick should match it as D_r does.",
    ]


def headline_marks(results: Results) -> dict[tuple[str, str], dict[str, str]]:
    """{(ds, model): marks} of the explicit classifier rate, the summary's headline column."""
    column = Column("forget", "toxic_rate", "down")
    return {
        (ds, model): column_marks(results, ds, model, column)
        for ds in results.datasets
        for model in results.models
        if results.run_methods(ds, model)
    }


def render_report(
    results: Results,
    plot_links: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None,
    appendix: str | None = None,
) -> str:
    """Markdown of the report: the generated summary, then the short tables; plot_links[(ds,
    model)] = [(caption, relative path)]; appendix: the relative link of the file that holds
    the full tables (render_full_tables), None to append them here."""
    missing_total = sum(len(v) for v in results.missing.values())
    out = [
        "# HMU benchmark report",
        "",
        *summary_lines(summary(results), headline_marks(results)),
        "",
        "Tables in the layout of the paper's Table 1, per dataset and model, from "
        f"`{results.metrics_dir.as_posix()}/<dataset>/<model>/<method>.json`.",
        "",
        f"**{missing_total} expected metrics files are missing** (listed per dataset)."
        if missing_total
        else "All expected metrics files are present.",
    ]
    out += _notes()
    for ds in results.datasets:
        out += _dataset_section(results, ds, plot_links or {})
    out += _agreement_section(results)
    out += instruments_section(results.metrics_dir, results.datasets)
    out += vq_section(results.metrics_dir, results.datasets)
    out += lcr_section(results.metrics_dir, results.datasets, results.models)
    out += seeds_section(results.metrics_dir)
    out += variants_sections(results.metrics_dir)
    if appendix is None:
        return "\n".join([*out, "", *_full_tables(results)]) + "\n"
    out += ["", "## Full tables", "", f"Every metric of every part: [{appendix}]({appendix})."]
    return "\n".join(out) + "\n"


def render_full_tables(results: Results, report_link: str) -> str:
    """Markdown of the appendix file: every metric per part, linking back to the report."""
    out = ["# HMU benchmark report: full tables", "", f"Back to the [report]({report_link}).", ""]
    return "\n".join(out + _full_tables(results)) + "\n"


def build_report(
    metrics_dir: str | os.PathLike,
    datasets: Sequence[str],
    models: Sequence[str],
    methods: Sequence[str] = METHOD_ORDER,
    samples_dir: str | os.PathLike | None = None,
    n_boot: int = N_BOOT,
) -> str:
    """The report markdown (without plots) for the given datasets, models and methods."""
    return render_report(load_results(metrics_dir, datasets, models, methods, samples_dir, n_boot))


# --- plots and summary ---


def write_plots(
    results: Results, plots_dir: str | os.PathLike
) -> dict[tuple[str, str], list[tuple[str, Path]]]:
    """Scatter plots per dataset, model and toxic part: the classifier's rate against retain
    FID, one point per method (files <ds>_<model>_toxic_vs_retain_fid.png for the explicit
    prompts, <ds>_<model>_<part>_vs_retain_fid.png for prompt lists); returns
    {(ds, model): [(title, path)]}. A plot is skipped when no method has both values."""
    written: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for ds in results.datasets:
        for model in results.models:
            for part in (p for p in _parts(_sources(results, ds, model)) if p != "retain"):
                points = {}
                for method in results.run_methods(ds, model):
                    data = results.runs[(ds, model, method)]
                    x = _mean(_entry(data, Column(part, "toxic_rate", "down")))
                    y = _mean(_entry(data, Column("retain", "fid", "down")))
                    if _finite(x) and _finite(y):
                        points[row_label(model, method)] = (x, y)
                if not points:
                    continue
                name = MODEL_NAMES.get(model, model)
                what = part_title(part).lower()
                title = f"{ds} · {name}: {what} classifier rate vs retain FID"
                suffix = "toxic" if part == "forget" else part
                path = Path(plots_dir) / f"{ds}_{model}_{suffix}_vs_retain_fid.png"
                scatter_plot(points, path, f"{what} toxic rate ↓", "retain FID ↓", title=title)
                written.setdefault((ds, model), []).append((title, path))
    return written


def summary(results: Results) -> dict[str, float]:
    """Flat {'<ds>.<model>.<method>.<part>.<metric>': mean} of the table columns, the excess
    rates ('...<method>.excess.<part>.<metric>' and '..._ci95_t'), the Real motion row and the
    instrument agreement ('<ds>.<model>.agreement.<part>.<detector>'), rounded to 6 decimals
    (stable `dvc metrics diff`); numbers only, no timings."""
    flat: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if _finite(value):
            flat[key] = round(float(value), 6)

    for ds, real in results.real.items():
        for col in quality_columns():
            put(f"{ds}.real.{col.part}.{col.metric}", _mean(_entry(real, col)))
    for ds in results.datasets:
        for model in results.models:
            columns = toxicity_columns(results, ds, model) + quality_columns()
            for method in results.run_methods(ds, model):
                data, key = results.runs[(ds, model, method)], f"{ds}.{model}.{method}"
                for col in columns:
                    entry = _entry(data, col)
                    if col.excess:
                        put(f"{key}.excess.{col.part}.{col.metric}", _mean(entry))
                        ci = entry.get("ci95_t") if isinstance(entry, Mapping) else None
                        put(f"{key}.excess.{col.part}.{col.metric}_ci95_t", ci)
                    else:
                        put(f"{key}.{col.part}.{col.metric}", _mean(entry))
    for (ds, model, part, other), (value, _) in agreement(results).items():
        put(f"{ds}.{model}.agreement.{part}.{other}", value)
    return dict(sorted(flat.items()))


def write_report(
    metrics_dir: str | os.PathLike,
    out_md: str | os.PathLike,
    plots_dir: str | os.PathLike,
    datasets: Sequence[str],
    models: Sequence[str],
    methods: Sequence[str] = METHOD_ORDER,
    out_json: str | os.PathLike | None = None,
    samples_dir: str | os.PathLike | None = None,
    n_boot: int = N_BOOT,
    out_full: str | os.PathLike | None = None,
) -> str:
    """Write the report markdown (with plot links), its full-tables appendix (default: out_md
    with "_full" added to the stem, next to it), the PNG plots and the flat JSON summary
    (default: out_md with suffix .json), all atomically; returns the report's markdown."""
    results = load_results(metrics_dir, datasets, models, methods, samples_dir, n_boot)
    out_md = Path(out_md)
    out_full = Path(out_full) if out_full is not None else out_md.with_stem(f"{out_md.stem}_full")
    plots = write_plots(results, plots_dir)
    links = {
        key: [(caption, _relative(path, out_md.parent)) for caption, path in items]
        for key, items in plots.items()
    }
    markdown = render_report(results, links, _relative(out_full, out_md.parent))
    write_text(out_md, markdown)
    write_text(out_full, render_full_tables(results, _relative(out_md, out_full.parent)))
    write_json(out_json if out_json is not None else out_md.with_suffix(".json"), summary(results))
    return markdown
