"""Precision replicas: does bf16 (or fp32) change the benchmark's results beyond evaluation noise?

A precision replica is the pipeline rerun under another `precision` block, e.g. `dvc exp run
--temp -S precision.train=bf16` (training; everything from the VQ-VAEs on reruns) or `-S
precision.generate=fp32` (generation; only the evaluations rerun). One dataset's evaluate stages
as targets fit a CPU session. `hmu precision` compares each replica with the workspace cell by
cell: the two means and their delta, the workspace's evaluation-only interval, and `p_runs`, a
one-way ANOVA of the repetitions grouped by run (hmu.eval.seeds.seed_p_value). A new training
seed is the yardstick for a training change (hmu.eval.seeds): a precision is harmless if it
moves no more cells than a new seed does. Writes metrics/precision.json and
metrics/precision.md; the report's section "Precision" reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hmu.eval.seeds import (
    HEADLINE,
    SEEDS_JSON,
    Run,
    current_digest,
    excess_table,
    headline_tables,
    method_results,
    metric_entries,
    results_digest,
    seed_p_value,
)
from hmu.io import read_json, write_json, write_text

PRECISION_JSON = Path("metrics/precision.json")
PRECISION_MD = Path("metrics/precision.md")
HOW = (
    "`dvc exp run --temp -S precision.train=bf16` (or `-S precision.generate=fp32`), then "
    "`hmu precision`"
)


def run_precision(run: Run) -> str:
    """The run's params.yaml precision block as text, e.g. "train fp32, generate bf16"."""
    block = (yaml.safe_load(run.read("params.yaml")) or {}).get("precision") or {}
    return ", ".join(f"{k} {block.get(k, '?')}" for k in ("train", "generate"))


def delta_cell(reference: dict, replica: dict) -> dict[str, Any]:
    """One metric in both runs: their means, delta (replica - reference), the reference's
    evaluation-only interval and p_runs (do the runs differ beyond evaluation noise?)."""
    means = [float(np.mean(e["values"])) for e in (reference, replica)]
    return {
        "reference": means[0],
        "replica": means[1],
        "delta": means[1] - means[0],
        "ci95_t_eval": reference.get("ci95_t"),
        "p_runs": seed_p_value([reference["values"], replica["values"]]),
    }


def _describe(run: Run, results: dict) -> dict[str, Any]:
    return {"name": run.name, "precision": run_precision(run), "digest": results_digest(results)}


def compare_replica(reference: dict, replica: Run) -> dict[str, Any]:
    """One replica against the reference's method JSONs: per method present in both (and
    rerun in the replica: a method whose JSON equals the reference's never reran, listed under
    not_replicated) and metric the delta cell; summary: how many cells differ beyond noise."""
    found = method_results(replica)
    same = sorted(k for k in found if found[k] == reference.get(k))
    cells = {}
    for key in sorted((set(reference) & set(found)) - set(same)):
        a, b = metric_entries(reference[key]), metric_entries(found[key])
        cells["/".join(key)] = {n: delta_cell(a[n], b[n]) for n in sorted(set(a) & set(b))}
    p_values = [c["p_runs"] for cell in cells.values() for c in cell.values()]
    tested = [p for p in p_values if p is not None]
    return {
        **_describe(replica, found),
        "summary": {
            "cells": len(p_values),
            "tested": len(tested),
            "runs_differ": sum(p < 0.05 for p in tested),
        },  # fmt: skip
        "not_replicated": ["/".join(k) for k in same],
        "cells": cells,
    }


def compare_runs(reference: Run, replicas: list[Run]) -> dict[str, Any]:
    """precision.json: the reference run and each replica compared with it."""
    results = method_results(reference)
    return {
        "reference": _describe(reference, results),
        "replicas": [compare_replica(results, replica) for replica in replicas],
    }


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def _delta_text(cell: dict | None) -> str:
    if cell is None:
        return "–"
    half = "n/a" if cell["ci95_t_eval"] is None else f"{cell['ci95_t_eval']:.3f}"
    return f"{cell['delta']:+.3f} (eval ± {half}; p {_p_text(cell['p_runs'])})"


def seed_yardstick(metrics_dir: str | Path = "metrics") -> str:
    """What a new training seed moves (seeds.json), the sentence the comparison is read by."""
    path = Path(metrics_dir) / SEEDS_JSON.name
    s = read_json(path)["summary"] if path.is_file() else None
    if s is None or s["seeds"] < 2:
        return "No training-seed replica of these results is pooled (metrics/seeds.json)."
    return (f"For scale: {s['seeds']} training seeds differ in {s['seeds_differ']} of "
            f"{s['tested']} tested cells (metrics/seeds.md).")  # fmt: skip


def _differ_sentence(replica: dict) -> str:
    s = replica["summary"]
    return (f"{replica['name']} ({replica['precision']}) differs beyond evaluation noise in "
            f"{s['runs_differ']} of {s['tested']} tested cells")  # fmt: skip


def render_precision(compared: dict[str, Any], yardstick: str) -> str:
    """metrics/precision.md: per replica, dataset and model, the headline deltas."""
    ref = compared["reference"]
    out = ["# Precision replicas", ""]
    if not compared["replicas"]:
        return "\n".join(out + [f"One run ({ref['name']}: {ref['precision']}): nothing to "
                                f"compare. Replicas: {HOW}."]) + "\n"  # fmt: skip
    out += [
        f"Reference: {ref['name']} ({ref['precision']}). Cells: replica minus reference, the "
        "reference's evaluation-only 95% t-interval, and p of a one-way ANOVA of the "
        f"repetitions grouped by run (5% level). {yardstick}"
    ]
    titles = [f"Δ {title}" for _, _, title in HEADLINE]
    for replica in compared["replicas"]:
        out += ["", f"## {replica['name']}: {replica['precision']}", "",
                f"{_differ_sentence(replica)}."]  # fmt: skip
        if replica["not_replicated"]:
            out += ["", f"Not rerun (left out): {', '.join(replica['not_replicated'])}."]
        out += headline_tables(replica["cells"], _delta_text, titles, level="###")
    return "\n".join(out) + "\n"


def write_precision(
    reference: Run, replicas: list[Run], out_json=PRECISION_JSON, out_md=PRECISION_MD
) -> list[Path]:
    """Compare the runs and write precision.json and precision.md (atomically)."""
    compared = compare_runs(reference, replicas)
    write_json(out_json, compared)
    write_text(out_md, render_precision(compared, seed_yardstick(Path(out_json).parent)))
    return [Path(out_json), Path(out_md)]


def precision_section(metrics_dir: str | Path = "metrics") -> list[str]:
    """The report's section on numeric precision: which precision produced these results and,
    for each replica in precision.json (written by `hmu precision`) of these very results, how
    far its precision moves the explicit excess rates."""
    metrics_dir = Path(metrics_dir)
    out = ["", "## Precision", ""]
    path = metrics_dir / PRECISION_JSON.name
    if not path.is_file():
        return out + [f"No {path.as_posix()}: run `hmu precision`."]
    compared = read_json(path)
    ref = compared["reference"]
    if ref["digest"] != current_digest(metrics_dir):
        return out + [f"{path.as_posix()} was collected from other results (stale): rerun "
                      "`hmu precision`."]  # fmt: skip
    produced = f"These results come from {ref['precision']} (params `precision`)."
    if not compared["replicas"]:
        return out + [f"{produced} No other precision is measured: {HOW}."]
    out += [f"{produced} Replicas under another precision: [precision.md](precision.md). "
            f"{seed_yardstick(metrics_dir)}"]  # fmt: skip
    for replica in compared["replicas"]:
        out += [
            "",
            f"{_differ_sentence(replica)} (one-way ANOVA, 5%). Delta of the excess classifier "
            "rate on the explicit prompts (replica minus these results; p):",
            "",
            *excess_table(
                replica["cells"], lambda c: f"{c['delta']:+.3f} ({_p_text(c['p_runs'])})"
            ),
        ]
    return out
