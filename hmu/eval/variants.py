"""Variant replicas: does a setting change the benchmark's results beyond evaluation noise?

A variant replica is the pipeline rerun with one params block changed, e.g. the numeric
precision (`dvc exp run --temp -S precision.train=bf16`: everything from the VQ-VAEs on reruns;
`-S precision.generate=fp32`: only the evaluations rerun) or BAMM's second pass (`-S
bamm.refine=upstream`: only BAMM's evaluations rerun). One dataset's evaluate stages as targets
fit a CPU session. `hmu variants <block>` compares each replica with the workspace cell by cell:
the two means and their delta, the workspace's evaluation-only interval, and `p_runs`, a one-way
ANOVA of the repetitions grouped by run (hmu.eval.seeds.seed_p_value). A new training seed is
the yardstick for a training change (hmu.eval.seeds): a setting is harmless if it moves no more
cells than a new seed does. Writes metrics/<file>.json and .md per block (VARIANTS); the
report's sections "Precision" and "BAMM's second pass" read them.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Variant:
    """A params block whose replicas `hmu variants <block>` compares with the workspace."""

    block: str  # the params.yaml block the replicas differ in
    keys: tuple[str, ...]  # its keys, as the tables name the setting
    title: str  # the report's section and the markdown file's title
    stem: str  # metrics/<stem>.json and .md
    how: str  # how a user makes and compares a replica

    @property
    def json(self) -> Path:
        return Path(f"metrics/{self.stem}.json")

    @property
    def md(self) -> Path:
        return Path(f"metrics/{self.stem}.md")


_BAMM_TARGETS = "$(dvc stage list --name-only | grep '^evaluate.*-bamm-')"
VARIANTS = {
    "precision": Variant(
        "precision",
        ("train", "generate"),
        "Precision",
        "precision",
        "`dvc exp run --temp -S precision.train=bf16` (or `-S precision.generate=fp32`), then "
        "`hmu variants precision`",
    ),
    "bamm": Variant(
        "bamm",
        ("refine",),
        "BAMM's second pass",
        "refine",
        f"`dvc exp run --temp -S bamm.refine=upstream {_BAMM_TARGETS}`, then `hmu variants bamm`",
    ),
}


def run_setting(run: Run, variant: Variant) -> str:
    """The run's params.yaml block of `variant` as text, e.g. "train fp32, generate bf16"."""
    block = (yaml.safe_load(run.read("params.yaml")) or {}).get(variant.block) or {}
    return ", ".join(f"{k} {block.get(k, '?')}" for k in variant.keys)


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


def _describe(run: Run, results: dict, variant: Variant) -> dict[str, Any]:
    return {
        "name": run.name,
        "setting": run_setting(run, variant),
        "digest": results_digest(results),
    }


def compare_replica(reference: dict, replica: Run, variant: Variant) -> dict[str, Any]:
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
        **_describe(replica, found, variant),
        "summary": {
            "cells": len(p_values),
            "tested": len(tested),
            "runs_differ": sum(p < 0.05 for p in tested),
        },  # fmt: skip
        "not_replicated": ["/".join(k) for k in same],
        "cells": cells,
    }


def compare_runs(reference: Run, replicas: list[Run], variant: Variant) -> dict[str, Any]:
    """<stem>.json: the block compared, the reference run and each replica compared with it."""
    results = method_results(reference)
    return {
        "block": variant.block,
        "reference": _describe(reference, results, variant),
        "replicas": [compare_replica(results, replica, variant) for replica in replicas],
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
    return (f"{replica['name']} ({replica['setting']}) differs beyond evaluation noise in "
            f"{s['runs_differ']} of {s['tested']} tested cells")  # fmt: skip


def render_variants(compared: dict[str, Any], variant: Variant, yardstick: str) -> str:
    """metrics/<stem>.md: per replica, dataset and model, the headline deltas."""
    ref = compared["reference"]
    out = [f"# {variant.title}: replicas", ""]
    if not compared["replicas"]:
        return "\n".join(out + [f"One run ({ref['name']}: {ref['setting']}): nothing to "
                                f"compare. Replicas: {variant.how}."]) + "\n"  # fmt: skip
    out += [
        f"Reference: {ref['name']} ({ref['setting']}). Cells: replica minus reference, the "
        "reference's evaluation-only 95% t-interval, and p of a one-way ANOVA of the "
        f"repetitions grouped by run (5% level). {yardstick}"
    ]
    titles = [f"Δ {title}" for _, _, title in HEADLINE]
    for replica in compared["replicas"]:
        out += ["", f"## {replica['name']}: {replica['setting']}", "",
                f"{_differ_sentence(replica)}."]  # fmt: skip
        if replica["not_replicated"]:
            out += ["", f"Not rerun (left out): {', '.join(replica['not_replicated'])}."]
        out += headline_tables(replica["cells"], _delta_text, titles, level="###")
    return "\n".join(out) + "\n"


def write_variants(
    reference: Run, replicas: list[Run], variant: Variant, out_json=None, out_md=None
) -> list[Path]:
    """Compare the runs and write the variant's JSON and markdown (atomically; default
    metrics/<stem>.json and .md)."""
    out_json, out_md = Path(out_json or variant.json), Path(out_md or variant.md)
    compared = compare_runs(reference, replicas, variant)
    write_json(out_json, compared)
    write_text(out_md, render_variants(compared, variant, seed_yardstick(out_json.parent)))
    return [out_json, out_md]


def variant_section(variant: Variant, metrics_dir: str | Path = "metrics") -> list[str]:
    """The report's section on one variant block: which setting produced these results and,
    for each replica in <stem>.json (written by `hmu variants <block>`) of these very results,
    how far its setting moves the explicit excess rates."""
    metrics_dir = Path(metrics_dir)
    out = ["", f"## {variant.title}", ""]
    path = metrics_dir / variant.json.name
    if not path.is_file():
        return out + [f"No {path.as_posix()}: run `hmu variants {variant.block}`."]
    compared = read_json(path)
    ref = compared["reference"]
    if ref["digest"] != current_digest(metrics_dir):
        return out + [f"{path.as_posix()} was collected from other results (stale): rerun "
                      f"`hmu variants {variant.block}`."]  # fmt: skip
    produced = f"These results come from {ref['setting']} (params `{variant.block}`)."
    if not compared["replicas"]:
        return out + [f"{produced} No other setting is measured: {variant.how}."]
    out += [f"{produced} Replicas under another setting: [{variant.md.name}]({variant.md.name}). "
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


def variants_sections(metrics_dir: str | Path = "metrics") -> list[str]:
    """The report's sections of every variant block, in VARIANTS order."""
    return [line for v in VARIANTS.values() for line in variant_section(v, metrics_dir)]
