"""Training-seed replicas: pool the benchmark's metrics over runs that differ only in train.seed.

A replica is the whole pipeline rerun under new training seeds, `dvc exp run -S train.seed=<k>`
(hmu.params.train_seed): every generator piece and the fine-tuning baseline train with new
seeds; the data, the judge and the evaluation protocol stay the same. The main tables show one
training seed, so their intervals cover evaluation sampling only. `hmu seeds` collects the
workspace and every DVC experiment of the current commit whose params differ from the
workspace's in train.seed alone (or project folders given by hand) and writes
metrics/seeds.json and metrics/seeds.md: per cell, each seed's mean, the seeds x repetitions
values pooled, and a Student-t interval over the seed means (training and evaluation variance
together) next to the evaluation-only interval of one seed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from hmu.eval.report_sections import markdown_table
from hmu.eval.stats import summarize, t_halfwidth
from hmu.io import read_json, write_json, write_text
from hmu.methods import METHOD_ORDER, MODEL_ORDER, method_label, order_key

SEEDS_JSON = Path("metrics/seeds.json")
SEEDS_MD = Path("metrics/seeds.md")
METHOD_FILE = re.compile(r"^metrics/([^/]+)/([^/]+)/([^/]+)\.json$")
HEADLINE = (  # (part, metric, title) of the summary table
    ("forget", "toxic_rate", "explicit classifier rate ↓"),
    ("excess.forget", "toxic_rate", "excess (classifier) ↓"),
    ("excess.forget", "kinematic_rate", "excess (kinematic) ↓"),
    ("forget", "fid", "forget FID → D_r"),
    ("retain", "fid", "retain FID ↓"),
    ("retain", "r1", "retain R@1 ↑"),
)


@dataclass
class Run:
    """One replica: its name, training-seed offset, and a reader of its project files."""

    name: str
    seed: int
    files: list[str]  # project-relative paths of its metrics files
    read: Callable[[str], str]


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _seed_of(params_text: str) -> int:
    return int((yaml.safe_load(params_text) or {}).get("train", {}).get("seed", 0))


def _without(params_text: str, key: str) -> dict:
    """The params of `params_text` without the dotted `key` (e.g. train.seed)."""
    params = yaml.safe_load(params_text) or {}
    *parents, leaf = key.split(".")
    block = params
    for name in parents:
        block = block.get(name) if isinstance(block, dict) else None
    if isinstance(block, dict):
        block.pop(leaf, None)
    return params


def _folder_files(root: Path, seed: int, name: str) -> Run:
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("metrics/*/*/*.json"))
    return Run(name, seed, files, lambda path: (root / path).read_text(encoding="utf-8"))


def folder_run(root: str | Path, name: str | None = None) -> Run:
    """The replica in a project folder (its params.yaml and metrics/)."""
    root = Path(root)
    if not (root / "params.yaml").is_file():
        raise FileNotFoundError(f"{root}: no params.yaml (not an HMU project folder)")
    seed = _seed_of((root / "params.yaml").read_text(encoding="utf-8"))
    return _folder_files(root, seed, name or root.as_posix())


def experiment_runs(
    root: str | Path = ".", names: Sequence[str] = (), vary: str = "train.seed"
) -> list[Run]:
    """The DVC experiments (refs/exps/<baseline>/<name>) whose params.yaml equals the
    workspace's but for the dotted param `vary` (train.seed: training-seed replicas;
    precision or bamm: the block, hmu.eval.variants), in seed order: those of HEAD, or the ones
    `names` lists (any baseline: the code may have moved on since, which the caller vouches
    for)."""
    root = Path(root)
    head = _git(root, "rev-parse", "HEAD").strip()
    workspace = _without((root / "params.yaml").read_text(encoding="utf-8"), vary)
    runs = []
    refs = _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    unknown = set(names) - {ref.split("/")[-1] for ref in refs}
    if unknown:
        raise ValueError(f"no DVC experiment named {sorted(unknown)} (see `dvc exp list`)")
    for ref in refs:
        parts = ref.split("/")  # refs exps <sha[:2]> <sha[2:]> <name>
        if len(parts) != 5:
            continue
        if not (parts[4] in names if names else parts[2] + parts[3] == head):
            continue
        params = _git(root, "show", f"{ref}:params.yaml")
        if _without(params, vary) != workspace:
            continue
        listed = _git(root, "ls-tree", "-r", "--name-only", ref, "--", "metrics").split()

        def read(path: str, ref: str = ref) -> str:
            return _git(root, "show", f"{ref}:{path}")

        runs.append(Run(parts[4], _seed_of(params), listed, read))
    return sorted(runs, key=lambda run: run.seed)


def method_results(run: Run) -> dict[tuple[str, str, str], dict]:
    """{(ds, model, method): method JSON} of a run (files with meta.method, not absent)."""
    found = {}
    for path in run.files:
        match = METHOD_FILE.match(path)
        if match is None or match.group(3).endswith("_unlearn"):
            continue
        data = json.loads(run.read(path))
        if isinstance(data, dict) and "absent" not in data and "method" in data.get("meta", {}):
            found[match.groups()] = data
    return found


def results_digest(results: dict[tuple[str, str, str], dict]) -> str:
    """Short hash of a run's method JSONs: the report tells a stale seeds.json by it."""
    text = json.dumps({"/".join(k): v for k, v in sorted(results.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_digest(metrics_dir: Path) -> str:
    """results_digest of the method JSONs under metrics_dir: what a collected file must match."""
    return results_digest(method_results(_folder_files(metrics_dir.parent, 0, "current")))


def metric_entries(data: dict) -> dict[str, dict]:
    """{"<part>/<metric>": entry} of every metric with per-repetition values (excess parts as
    "excess.<part>")."""
    out = {}
    for part, metrics in data.items():
        if part == "excess" and isinstance(metrics, dict):
            for sub, inner in metrics.items():
                out.update({f"excess.{sub}/{m}": e for m, e in inner.items() if "values" in e})
        elif part != "meta" and isinstance(metrics, dict):
            out.update({f"{part}/{m}": e for m, e in metrics.items() if isinstance(e, dict)
                        and e.get("values")})  # fmt: skip
    return out


def seed_p_value(groups: Sequence[Sequence[float]]) -> float | None:
    """p-value of "the training seeds do not change the metric": a one-way ANOVA of the
    per-repetition values grouped by seed (None with one seed, a single value per seed, or no
    spread at all)."""
    if len(groups) < 2 or min(len(g) for g in groups) < 2:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant groups: scipy warns and returns nan
        p = float(stats.f_oneway(*(np.asarray(g, dtype=np.float64) for g in groups)).pvalue)
    return None if np.isnan(p) else p


def pool_cell(entries: Sequence[dict]) -> dict[str, Any]:
    """One metric over the seeds: each seed's mean, their mean with a t-interval over seeds
    (ci95_t_seeds, None for one seed; with 2 seeds it has 1 degree of freedom, 12.7 x the
    half-difference), the mean evaluation-only interval of one seed (ci95_t_eval), p_seeds
    (seed_p_value: do the seeds differ beyond evaluation noise?) and the seeds x repetitions
    values pooled (`pooled`: mean, ci95, ci95_t and n of hmu.eval.stats.summarize; the pooled
    interval treats the values as independent, so it understates the training variance)."""
    means = [float(np.mean(e["values"])) for e in entries]
    evals = [e["ci95_t"] for e in entries if e.get("ci95_t") is not None]
    values = np.concatenate([e["values"] for e in entries])
    pooled = {k: v for k, v in summarize(values).items() if k != "values"}
    return {
        "seed_means": means,
        "mean": float(np.mean(means)),
        "ci95_t_seeds": t_halfwidth(means),
        "ci95_t_eval": float(np.mean(evals)) if evals else None,
        "p_seeds": seed_p_value([e["values"] for e in entries]),
        "pooled": {**pooled, "n": int(values.size)},
    }


def pool_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """seeds.json: the runs, and per method (present in every run) and metric the pooled cell;
    summary: how many cells the seeds change beyond evaluation noise (p_seeds < 0.05).
    A replica's method whose JSON equals the first run's was not rerun under the replica's
    seed (`dvc exp run` with one dataset's evaluate stages as targets): it is left out of the
    pooling and listed under "not_replicated"."""
    if len({run.seed for run in runs}) != len(runs):
        raise ValueError(f"two runs share a training seed: {[(r.name, r.seed) for r in runs]}")
    results = [method_results(run) for run in runs]
    stale = {}  # a replica's method identical to the first run's: its stages never reran
    for run, found in zip(runs[1:], results[1:], strict=True):
        same = sorted(k for k in found if found[k] == results[0].get(k))
        stale.update({run.name: ["/".join(k) for k in same]} if same else {})
        for key in same:
            del found[key]
    common = sorted(set.intersection(*(set(r) for r in results)))
    cells = {}
    for key in common:
        per_run = [metric_entries(r[key]) for r in results]
        names = sorted(set.intersection(*(set(e) for e in per_run)))
        cells["/".join(key)] = {n: pool_cell([e[n] for e in per_run]) for n in names}
    p_values = [c["p_seeds"] for cell in cells.values() for c in cell.values()]
    tested = [p for p in p_values if p is not None]
    summary = {"seeds": len(runs), "cells": len(p_values), "tested": len(tested),
               "seeds_differ": sum(p < 0.05 for p in tested)}  # fmt: skip
    return {
        "runs": [
            {"name": run.name, "seed": run.seed, "digest": results_digest(res)}
            for run, res in zip(runs, results, strict=True)
        ],
        "summary": summary,
        "not_replicated": stale,
        "cells": cells,
    }


def _half(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _seed_means(cell: dict, digits: int) -> str:
    return " / ".join(f"{m:.{digits}f}" for m in cell["seed_means"])


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "–"
    return (
        f"{cell['mean']:.3f} ± {_half(cell['ci95_t_seeds'])} "
        f"(eval ± {_half(cell['ci95_t_eval'])}; seeds {_seed_means(cell, 3)})"
    )


def cell_order(key: str) -> tuple:
    ds, model, method = key.split("/")
    return ds, order_key(model, MODEL_ORDER), order_key(method, METHOD_ORDER)


def headline_tables(
    cells: dict[str, dict], text: Callable[[dict | None], str], titles: list[str], level: str = "##"
) -> list[str]:
    """Markdown: per dataset · model a heading and a table, a row per method and a column per
    HEADLINE metric holding text(cell) (cell None where the metric is missing)."""
    tables: dict[tuple[str, str], list[list[str]]] = {}
    for key in sorted(cells, key=cell_order):
        ds, model, method = key.split("/")
        row = [method_label(method)]
        row += [text(cells[key].get(f"{part}/{metric}")) for part, metric, _ in HEADLINE]
        tables.setdefault((ds, model), []).append(row)
    out = []
    for (ds, model), rows in tables.items():
        out += ["", f"{level} {ds} · {model}", "", *markdown_table(["method", *titles], rows)]
    return out


def render_seeds(pooled: dict[str, Any]) -> str:
    """metrics/seeds.md: per dataset and model, the headline cells over the training seeds."""
    runs = ", ".join(f"{r['name']} (train.seed={r['seed']})" for r in pooled["runs"])
    s = pooled["summary"]
    out = [
        "# Training-seed replicas",
        "",
        f"Runs: {runs}. Cells: mean over the {s['seeds']} seeds ± 95% Student-t interval over "
        "the seed means (training and evaluation variance), then the mean evaluation-only "
        "interval of one seed (what the main report shows) and each seed's mean.",
        "",
        f"In {s['seeds_differ']} of {s['tested']} tested cells the seeds differ beyond "
        "evaluation noise (one-way ANOVA of the repetitions grouped by seed, 5% level): there "
        "one seed's interval understates the uncertainty. With 2 seeds the t-interval over "
        "seeds has 1 degree of freedom (12.7 x half the difference)."
        if s["seeds"] > 1
        else "One training seed: no training-seed interval yet "
        "(`dvc exp run --temp -S train.seed=1`, then `hmu seeds`).",
    ]
    for name, keys in pooled.get("not_replicated", {}).items():
        out += ["", f"Not rerun in {name} (left out): {', '.join(keys)}."]
    if s["seeds"] > 1:
        out += headline_tables(pooled["cells"], _cell_text, [title for _, _, title in HEADLINE])
    return "\n".join(out) + "\n"


def write_seeds(runs: Sequence[Run], out_json=SEEDS_JSON, out_md=SEEDS_MD) -> list[Path]:
    """Pool `runs` and write seeds.json and seeds.md (atomically); returns the paths."""
    pooled = pool_runs(runs)
    write_json(out_json, pooled)
    write_text(out_md, render_seeds(pooled))
    return [Path(out_json), Path(out_md)]


def excess_table(cells: dict[str, dict], text: Callable[[dict], str]) -> list[str]:
    """A markdown table, a row per dataset · model and a column per method, of text(cell) for
    the explicit excess classifier rate cell of every "<ds>/<model>/<method>" key."""
    rows: dict[str, dict[str, str]] = {}
    for key, metric_cells in sorted(cells.items(), key=lambda kv: cell_order(kv[0])):
        ds, model, method = key.split("/")
        cell = metric_cells.get("excess.forget/toxic_rate")
        if cell is not None:
            rows.setdefault(f"{ds} · {model}", {})[method] = text(cell)
    header = ["dataset · model", *(method_label(m) for m in METHOD_ORDER)]
    return markdown_table(
        header, [[n, *(r.get(m, "–") for m in METHOD_ORDER)] for n, r in rows.items()]
    )


def seeds_section(metrics_dir: str | Path = "metrics") -> list[str]:
    """The report's section on training seeds: which variance the tables' intervals cover, and
    the pooled excess rates when seeds.json (written by `hmu seeds`) holds several seeds of
    these very results (a seeds.json collected from other results is reported as stale)."""
    metrics_dir = Path(metrics_dir)
    out = ["", "## Training seeds", ""]
    path = metrics_dir / SEEDS_JSON.name
    one_seed = (
        "The tables show one training seed: their intervals cover evaluation sampling only, "
        'not the variance of training (README "Training seeds").'
    )
    if not path.is_file():
        return out + [f"{one_seed} No {path.as_posix()}: run `hmu seeds`."]
    pooled = read_json(path)
    current = current_digest(metrics_dir)
    if current not in {run["digest"] for run in pooled["runs"]}:
        return out + [f"{one_seed} {path.as_posix()} was collected from other results (stale): "
                      "rerun `hmu seeds`."]  # fmt: skip
    s = pooled["summary"]
    if s["seeds"] < 2:
        replicas = "Replicas: `dvc exp run --temp -S train.seed=1`, then `hmu seeds`."
        return out + [f"{one_seed} {replicas}"]
    seeds = ", ".join(str(run["seed"]) for run in pooled["runs"])
    out += [
        f"{s['seeds']} training seeds ({seeds}) are pooled in [seeds.md](seeds.md): in "
        f"{s['seeds_differ']} of {s['tested']} tested cells the seeds differ beyond evaluation "
        "noise (one-way ANOVA, 5%). Excess classifier rate on the explicit "
        "prompts, mean over seeds ± t-interval over seeds (each seed's mean):",
        "",
    ]
    out += excess_table(
        pooled["cells"],
        lambda cell: f"{cell['mean']:.3f} ± {_half(cell['ci95_t_seeds'])} ({_seed_means(cell, 2)})",
    )
    left_out = sorted({k.rsplit("/", 1)[0] for keys in pooled["not_replicated"].values()
                       for k in keys})  # fmt: skip
    return out + (
        ["", f"Not replicated (one seed only): {', '.join(left_out)}."] if left_out else []
    )
