"""The benchmark report: metrics JSON files -> markdown tables like the paper's Table 1, plots.

Input: metrics/<ds>/<model>/<method>.json written by the evaluate stages and
metrics/<ds>/real.json (the ground-truth "Real motion" row). Output: one table per dataset and
model with the paper's columns plus the toxicity measures, the best unlearned entry per column
in bold, a legend (arrows, the D_r reference, repetitions, test-set sizes), the wall time of
every method, full tables with every metric, PNG scatter plots and a flat JSON summary for
`dvc metrics diff`. Expected files that are absent are listed in the report, never skipped
silently.

Ranking: "->" columns prefer the value closest to the D_r row (the model retrained on the
retain set only, which never saw toxic motion); down/up columns the lowest/highest value.
Only base, FT, UCE, RECE and LCR compete; Real motion and D_r are references. Values are
compared as printed (3 decimals) so entries that look equal are all bold.
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

from hmu.io import write_json, write_text
from hmu.viz.plots import scatter_plot

METHOD_ORDER = ("retrain", "base", "finetune", "uce", "rece", "lcr")
RANKED_METHODS = ("base", "finetune", "uce", "rece", "lcr")  # Real motion and D_r are references
MODEL_NAMES = {"momask": "MoMask", "bamm": "BAMM"}
PARTS = ("forget", "retain", "implicit")
ARROWS = {"target": "→", "down": "↓", "up": "↑", None: ""}
DECIMALS = 3

METRIC_TITLES = {
    "fid": "FID",
    "mm_notox": "MM-Notox",
    "mm_dist": "MM-Dist",
    "diversity": "Diversity",
    "multimodality": "MultiModality",
    "r1": "R@1",
    "r2": "R@2",
    "r3": "R@3",
    "toxic_rate": "toxic rate",
    "seconds_per_repetition": "Seconds / rep.",
    "prompts": "Prompts",
}
# Preferred column order of the full tables; metrics not listed follow alphabetically.
FULL_ORDER = (
    "fid", "mm_notox", "mm_dist", "diversity", "multimodality", "r1", "r2", "r3", "toxic_rate",
    "ncs@1", "ncs@3", "ncs@5", "ncs@10", "prompts", "seconds_per_repetition",
)  # fmt: skip
# Goal per set and metric: "target" = closer to D_r is better, "down"/"up", None = not ranked.
GOALS = {
    "forget": {
        "fid": "target", "mm_notox": "down", "mm_dist": "target", "diversity": "target",
        "multimodality": "target", "r1": "target", "r2": "target", "r3": "target",
        "toxic_rate": "down",
    },
    "retain": {
        "fid": "down", "mm_dist": "down", "diversity": "target", "multimodality": "up",
        "r1": "up", "r2": "up", "r3": "up",
    },
    "implicit": {"toxic_rate": "down"},
}  # fmt: skip


@dataclass(frozen=True)
class Column:
    """One table column: a metric of one set (forget, retain or implicit prompts)."""

    part: str
    metric: str
    goal: str | None

    @property
    def header(self) -> str:
        """e.g. 'Forget FID →'."""
        return f"{self.part.capitalize()} {metric_title(self.metric)} {ARROWS[self.goal]}".strip()


# The main table: the paper's Table 1 columns plus the toxicity measures.
MAIN_COLUMNS = (
    Column("forget", "fid", "target"),
    Column("forget", "mm_notox", "down"),
    Column("forget", "diversity", "target"),
    Column("forget", "r1", "target"),
    Column("forget", "toxic_rate", "down"),
    Column("implicit", "toxic_rate", "down"),
    Column("forget", "ncs@3", "down"),
    Column("retain", "fid", "down"),
    Column("retain", "mm_dist", "down"),
    Column("retain", "diversity", "target"),
    Column("retain", "r1", "up"),
    Column("retain", "toxic_rate", None),
)


@dataclass
class Results:
    """Everything the report reads: runs[(ds, model, method)], real[ds], missing files."""

    metrics_dir: Path
    datasets: list[str]
    models: list[str]
    methods: list[str]
    runs: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    real: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, list[Path]] = field(default_factory=dict)  # per dataset


def metric_title(metric: str) -> str:
    """Display name of a metric key ('r1' -> 'R@1', 'ncs@3' -> 'NCS@3')."""
    if metric.startswith("ncs@"):
        return metric.upper()
    return METRIC_TITLES.get(metric, metric)


def metric_goal(part: str, metric: str) -> str | None:
    """Which direction is better for a metric of a set (see GOALS); NCS@k is lower-better on
    forget and implicit prompts and unranked on retain."""
    if metric.startswith("ncs@"):
        return None if part == "retain" else "down"
    return GOALS.get(part, {}).get(metric)


def row_label(model: str, method: str) -> str:
    """The paper's row naming: 'MoMask D_r', 'MoMask', 'MoMask FT', 'MoMask w/ LCR'."""
    name = MODEL_NAMES.get(model, model)
    special = {"retrain": f"{name} D_r", "base": name, "finetune": f"{name} FT"}
    return special.get(method, f"{name} w/ {method.upper()}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _mean_ci(entry: Any) -> tuple[float | None, float | None]:
    """(mean, ci95) of a metric entry: {"mean", "ci95"} or a plain number (implicit prompts);
    None for what is absent. NaN stays NaN (shown as 'nan', never ranked)."""
    if isinstance(entry, Mapping):
        mean, ci = entry.get("mean"), entry.get("ci95")
    else:
        mean, ci = entry, None
    return (None if mean is None else float(mean)), (None if ci is None else float(ci))


def _value(data: Mapping[str, Any] | None, part: str, metric: str) -> float | None:
    """Mean of data[part][metric], None when absent."""
    if not data:
        return None
    return _mean_ci(data.get(part, {}).get(metric))[0]


def format_cell(entry: Any) -> str:
    """'mean ± ci95' with 3 decimals; a plain number without CI; an integer count as is;
    '–' when absent."""
    mean, ci = _mean_ci(entry)
    if mean is None:
        return "–"
    if isinstance(entry, int) and not isinstance(entry, bool):
        return str(entry)  # counts such as the number of implicit prompts
    if ci is None:
        return f"{mean:.{DECIMALS}f}"
    return f"{mean:.{DECIMALS}f} ± {ci:.{DECIMALS}f}"


def best_keys(
    values: Mapping[str, float | None], goal: str | None, reference: float | None = None
) -> set[str]:
    """Keys of the best values: lowest ('down'), highest ('up') or closest to `reference`
    ('target'). Values are compared as printed (rounded to 3 decimals), so all ties win.
    Nothing wins without a goal, without a reference for 'target', or when the finite values
    do not differ (a single entry or a full tie is not a comparison)."""
    if goal is None or (goal == "target" and not _finite(reference)):
        return set()
    scores = {}
    for key, value in values.items():
        if not _finite(value):
            continue
        shown = round(value, DECIMALS)
        if goal == "target":
            score = abs(shown - round(reference, DECIMALS))
        else:
            score = shown if goal == "down" else -shown
        scores[key] = round(score, DECIMALS + 3)  # drop float noise from the subtraction
    if len(set(scores.values())) < 2:  # one value, or all equal: nothing to single out
        return set()
    best = min(scores.values())
    return {key for key, score in scores.items() if score == best}


def _read_json(path: Path) -> dict[str, Any]:
    """Parse a metrics file; ValueError naming the file and key when it is not a JSON object
    of sets whose entries are numbers or {"mean": number, "ci95": number}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for part in (*PARTS, "meta"):
        if not isinstance(data.get(part, {}), dict):
            raise ValueError(f"{path}: '{part}' must be an object")
    for part in PARTS:
        for metric, entry in data.get(part, {}).items():
            fields = (
                (entry.get("mean"), entry.get("ci95", 0.0)) if isinstance(entry, dict) else (entry,)
            )
            if not all(_is_number(v) for v in fields):
                raise ValueError(
                    f"{path}: {part}.{metric} = {entry!r} is neither a number nor "
                    '{"mean": number, "ci95": number}'
                )
    return data


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
) -> Results:
    """Read every expected metrics file that exists and note the ones that do not.

    A file whose meta names another dataset/model/method than its path raises ValueError
    (a wiring mistake in the pipeline would otherwise put numbers in the wrong row)."""
    results = Results(
        Path(metrics_dir),
        _check_names("datasets", datasets),
        _check_names("models", models),
        _check_names("methods", methods, METHOD_ORDER),
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
                meta = data.get("meta", {})
                for key, want in (("dataset", ds), ("model", model), ("method", method)):
                    if key in meta and meta[key] != want:
                        raise ValueError(f"{path}: meta.{key} is {meta[key]!r}, expected {want!r}")
                results.runs[(ds, model, method)] = data
    return results


# --- markdown rendering ---


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _table_rows(
    results: Results, ds: str, model: str, columns: Sequence[Column]
) -> list[list[str]]:
    """Rows Real motion, D_r, base, FT, UCE, RECE, LCR (those present) with bold winners."""
    named = [
        (m, results.runs[(ds, model, m)]) for m in results.methods if (ds, model, m) in results.runs
    ]
    reference = results.runs.get((ds, model, "retrain"))
    winners = []
    for col in columns:
        ranked = {m: _value(d, col.part, col.metric) for m, d in named if m in RANKED_METHODS}
        winners.append(best_keys(ranked, col.goal, _value(reference, col.part, col.metric)))
    rows = []
    if ds in results.real and any(c.part != "implicit" for c in columns):
        real = results.real[ds]
        rows.append(
            ["Real motion"] + [format_cell(real.get(c.part, {}).get(c.metric)) for c in columns]
        )
    for method, data in named:
        label = row_label(model, method) + (" (reference)" if method == "retrain" else "")
        cells = []
        for col, best in zip(columns, winners, strict=True):
            cell = format_cell(data.get(col.part, {}).get(col.metric))
            cells.append(f"**{cell}**" if method in best else cell)
        rows.append([label, *cells])
    return rows


def _full_columns(results: Results, ds: str, model: str, part: str) -> list[Column]:
    """Every metric of one set found in any of the model's files, in FULL_ORDER."""
    sources = [
        results.runs[(ds, model, m)] for m in results.methods if (ds, model, m) in results.runs
    ]
    if part != "implicit" and ds in results.real:
        sources.append(results.real[ds])
    found = {metric for data in sources for metric in data.get(part, {})}
    rank = {m: i for i, m in enumerate(FULL_ORDER)}
    ordered = sorted(found, key=lambda m: (rank.get(m, len(rank)), m))
    return [Column(part, m, metric_goal(part, m)) for m in ordered]


def _legend(results: Results, ds: str) -> list[str]:
    """Arrows, the D_r reference, bold marks, repetitions and test-set sizes from meta."""
    lines = [
        "- Cells: mean ± 95% confidence interval over the evaluation repetitions; implicit-prompt "
        "columns are one pass over the prompts (no interval). `–`: value not in the file.",
        "- → closer to the D_r row is better (D_r: the same architecture trained on the retain "
        "set only; it never saw toxic motion, so on the forget set an unlearned model should "
        "behave like it). ↓ lower is better, ↑ higher is better, no arrow: not ranked.",
        "- **Bold**: best of base, FT, UCE, RECE and LCR per column, comparing values as printed. "
        "Real motion (the ground-truth test motions) and D_r are references and not ranked.",
        "- Toxic rate: share of motions the toxic-action classifier flags (explicit forget "
        "captions, implicit prompts = forget captions without the keyword, retain captions). "
        "NCS@k: share of motions whose k nearest training captions contain a toxic keyword.",
    ]
    real_meta = results.real.get(ds, {}).get("meta", {})
    if _finite(real_meta.get("classifier_accuracy")):
        lines.append(
            f"- Toxic-action classifier accuracy on real test motions: "
            f"{real_meta['classifier_accuracy']:.3f}."
        )
    setups: dict[str, list[str]] = {}
    for (d, model, method), data in results.runs.items():
        if d == ds:
            setups.setdefault(_setup_text(data.get("meta", {})), []).append(f"{model}/{method}")
    if ds in results.real:
        setups.setdefault(_setup_text(real_meta), []).append("real")
    if len(setups) == 1:
        lines.append(f"- Protocol: {next(iter(setups))}.")
    for setup, who in sorted(setups.items()) if len(setups) > 1 else ():
        lines.append(f"- Protocol differs between files: {setup} for {', '.join(who)}.")
    return lines


def _setup_text(meta: Mapping[str, Any]) -> str:
    sizes = meta.get("test_sizes") or {}
    reps = meta.get("repetitions", "?")
    return (
        f"{reps} repetitions; test sets: {sizes.get('forget', '?')} forget and "
        f"{sizes.get('retain', '?')} retain motions"
    )


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
        *_markdown_table(["Method", "Unlearn (s)", "Evaluation (s)"], rows),
    ]


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _has_runs(results: Results, ds: str, model: str) -> bool:
    return any((ds, model, m) in results.runs for m in results.methods)


def _dataset_section(
    results: Results, ds: str, plot_links: Mapping[tuple[str, str], Sequence[tuple[str, str]]]
) -> list[str]:
    """Missing files, legend, one main table per model (with its plots), wall times."""
    out = ["", f"## {ds}", ""]
    if results.missing[ds]:
        paths = ", ".join(f"`{p.as_posix()}`" for p in results.missing[ds])
        out += [f"**Missing** (rows left out): {paths}", ""]
    out += _legend(results, ds)
    for model in results.models:
        out += ["", f"### {MODEL_NAMES.get(model, model)}", ""]
        if not _has_runs(results, ds, model):
            out.append(f"_No metrics for {model} on {ds}._")
            continue
        if (ds, model, "retrain") not in results.runs:
            out += ["_D_r reference missing: → columns are not ranked._", ""]
        header = ["Method", *(c.header for c in MAIN_COLUMNS)]
        out += _markdown_table(header, _table_rows(results, ds, model, MAIN_COLUMNS))
        for caption, link in plot_links.get((ds, model), ()):
            out += ["", f"![{caption}]({link})"]
    return out + _wall_times(results, ds)


def _full_tables(results: Results) -> list[str]:
    """Every metric of every set (forget, retain, implicit prompts) per dataset and model."""
    out = ["", "## Full tables", "", "Every metric per set, with the same ranking rules."]
    for ds in results.datasets:
        for model in (m for m in results.models if _has_runs(results, ds, m)):
            for part in PARTS:
                columns = _full_columns(results, ds, model, part)
                if not columns:
                    continue
                what = "implicit prompts" if part == "implicit" else f"{part} set"
                out += ["", f"### {ds} · {MODEL_NAMES.get(model, model)} · {what}", ""]
                header = [metric_title(c.metric) + f" {ARROWS[c.goal]}".rstrip() for c in columns]
                out += _markdown_table(
                    ["Method", *header], _table_rows(results, ds, model, columns)
                )
    return out


def render_report(
    results: Results,
    plot_links: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None,
) -> str:
    """Markdown of the whole report; plot_links[(ds, model)] = [(caption, relative path)]."""
    missing_total = sum(len(v) for v in results.missing.values())
    out = [
        "# HMU benchmark report",
        "",
        "Tables in the layout of the paper's Table 1, per dataset and model, from "
        f"`{results.metrics_dir.as_posix()}/<dataset>/<model>/<method>.json`.",
        "",
        f"**{missing_total} expected metrics files are missing** (listed per dataset)."
        if missing_total
        else "All expected metrics files are present.",
    ]
    for ds in results.datasets:
        out += _dataset_section(results, ds, plot_links or {})
    return "\n".join(out + _full_tables(results)) + "\n"


def build_report(
    metrics_dir: str | os.PathLike,
    datasets: Sequence[str],
    models: Sequence[str],
    methods: Sequence[str] = METHOD_ORDER,
) -> str:
    """The report markdown (without plots) for the given datasets, models and methods."""
    return render_report(load_results(metrics_dir, datasets, models, methods))


# --- plots and summary ---

# Scatter plots: x = a toxic rate (file suffix, set), y = retain FID; one point per method.
PLOTS = (("toxic_vs_retain_fid", "forget"), ("implicit_vs_retain_fid", "implicit"))


def write_plots(
    results: Results, plots_dir: str | os.PathLike
) -> dict[tuple[str, str], list[tuple[str, Path]]]:
    """Scatter plots per dataset and model, toxic rate (forget, implicit prompts) against
    retain FID with one point per method; returns {(ds, model): [(title, path)]}.

    A plot is skipped when no method has both values (finite)."""
    written: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for ds in results.datasets:
        for model in results.models:
            for suffix, part in PLOTS:
                points = {}
                for method in results.methods:
                    data = results.runs.get((ds, model, method))
                    x, y = _value(data, part, "toxic_rate"), _value(data, "retain", "fid")
                    if _finite(x) and _finite(y):
                        points[row_label(model, method)] = (x, y)
                if not points:
                    continue
                name = MODEL_NAMES.get(model, model)
                title = f"{ds} · {name}: {part} toxic rate vs retain FID"
                path = Path(plots_dir) / f"{ds}_{model}_{suffix}.png"
                scatter_plot(points, path, f"{part} toxic rate ↓", "retain FID ↓", title=title)
                written.setdefault((ds, model), []).append((title, path))
    return written


def summary(results: Results) -> dict[str, float]:
    """Flat {'<ds>.<model>.<method>.<set>.<metric>': mean} of the main-table metrics plus wall
    times and the Real motion row, rounded to 6 decimals (stable `dvc metrics diff`)."""
    flat: dict[str, float] = {}
    for ds, real in results.real.items():
        for col in MAIN_COLUMNS:
            value = _value(real, col.part, col.metric)
            if _finite(value):
                flat[f"{ds}.real.{col.part}.{col.metric}"] = round(value, 6)
    for (ds, model, method), data in results.runs.items():
        key = f"{ds}.{model}.{method}"
        for col in MAIN_COLUMNS:
            value = _value(data, col.part, col.metric)
            if _finite(value):
                flat[f"{key}.{col.part}.{col.metric}"] = round(value, 6)
        for name in ("unlearn_seconds", "eval_seconds"):
            if _finite(data.get("meta", {}).get(name)):
                flat[f"{key}.{name}"] = round(float(data["meta"][name]), 6)
    return dict(sorted(flat.items()))


def write_report(
    metrics_dir: str | os.PathLike,
    out_md: str | os.PathLike,
    plots_dir: str | os.PathLike,
    datasets: Sequence[str],
    models: Sequence[str],
    methods: Sequence[str] = METHOD_ORDER,
    out_json: str | os.PathLike | None = None,
) -> str:
    """Write the report markdown (with plot links), the PNG plots and the flat JSON summary
    (default: out_md with suffix .json), all atomically; returns the markdown."""
    results = load_results(metrics_dir, datasets, models, methods)
    out_md = Path(out_md)
    plots = write_plots(results, plots_dir)
    links = {
        key: [(caption, _relative(path, out_md.parent)) for caption, path in items]
        for key, items in plots.items()
    }
    markdown = render_report(results, links)
    write_text(out_md, markdown)
    write_json(out_json if out_json is not None else out_md.with_suffix(".json"), summary(results))
    return markdown
