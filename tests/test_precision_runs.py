"""Precision replicas: the cell-by-cell comparison, the report's section and the `hmu precision`
command (hmu.eval.precision_runs)."""

import json

import numpy as np
import pytest
import yaml

from hmu.cli import main
from hmu.eval.precision_runs import compare_runs, precision_section, write_precision
from hmu.eval.seeds import Run, folder_run
from hmu.eval.stats import t_halfwidth


def _method_json(rate_values, fid_values):
    entry = lambda v: {"mean": float(np.mean(v)), "ci95_t": t_halfwidth(v), "values": v}  # noqa: E731
    return {
        "forget": {"toxic_rate": entry(rate_values), "fid": entry(fid_values)},
        "excess": {"forget": {"toxic_rate": entry([r - 0.1 for r in rate_values])}},
        "meta": {"dataset": "d", "model": "momask", "method": "lcr"},
    }


def _project(root, precision, rate, seed=0):
    (root / "metrics/d/momask").mkdir(parents=True, exist_ok=True)
    params = {"precision": {"train": precision, "generate": "bf16"}, "train": {"seed": seed}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    data = _method_json([rate, rate + 0.02, rate + 0.04], [5.0, 6.0, 7.0])
    (root / "metrics/d/momask/lcr.json").write_text(json.dumps(data))
    return root


def _memory_run(name, precision, files):
    params = {"precision": {"train": precision, "generate": "bf16"}}
    files = {"params.yaml": yaml.safe_dump(params), **files}
    return Run(name, 0, sorted(files), lambda path: files[path])


def test_compare_runs_gives_deltas_and_tests_them_against_evaluation_noise():
    ref = _method_json([0.20, 0.22, 0.24], [5.0, 6.0, 7.0])
    rep = _method_json([0.50, 0.52, 0.54], [5.5, 6.0, 6.5])
    compared = compare_runs(
        _memory_run("ws", "fp32", {"metrics/d/momask/lcr.json": json.dumps(ref)}),
        [_memory_run("bf16", "bf16", {"metrics/d/momask/lcr.json": json.dumps(rep)})],
    )
    assert compared["reference"]["precision"] == "train fp32, generate bf16"
    replica = compared["replicas"][0]
    assert replica["precision"] == "train bf16, generate bf16"
    cell = replica["cells"]["d/momask/lcr"]["forget/toxic_rate"]
    assert cell["delta"] == pytest.approx(0.30)
    assert cell["ci95_t_eval"] == pytest.approx(t_halfwidth([0.20, 0.22, 0.24]))
    fid = replica["cells"]["d/momask/lcr"]["forget/fid"]
    assert cell["p_runs"] < 0.05 < fid["p_runs"]  # rates moved beyond noise, FID did not
    assert replica["summary"] == {"cells": 3, "tested": 3, "runs_differ": 2}
    # a replica method identical to the reference never reran: left out, listed
    same = compare_runs(
        _memory_run("ws", "fp32", {"metrics/d/momask/lcr.json": json.dumps(ref)}),
        [_memory_run("glob", "bf16", {"metrics/d/momask/lcr.json": json.dumps(ref)})],
    )["replicas"][0]
    assert same["cells"] == {} and same["not_replicated"] == ["d/momask/lcr"]


def test_report_section_names_the_precision_and_the_replicas(tmp_path):
    ws = _project(tmp_path, "fp32", 0.2)
    assert "No " in "\n".join(precision_section(ws / "metrics"))
    files = (ws / "metrics/precision.json", ws / "metrics/precision.md")
    write_precision(folder_run(ws, "ws"), [], *files)
    text = "\n".join(precision_section(ws / "metrics"))
    assert "come from train fp32, generate bf16" in text and "No other precision" in text
    other = _project(tmp_path / "other", "bf16", 0.5)
    write_precision(folder_run(ws, "ws"), [folder_run(other, "bf16-run")], *files)
    text = "\n".join(precision_section(ws / "metrics"))
    assert "bf16-run (train bf16, generate bf16) differs" in text and "| d · momask |" in text
    assert "+0.300" in text  # excess delta 0.4 - 0.1
    assert "Δ explicit classifier rate" in files[1].read_text()
    _project(ws, "fp32", 0.3)  # the results changed after `hmu precision`
    assert "stale" in "\n".join(precision_section(ws / "metrics"))


def test_precision_command_collects_replicas_of_another_precision(tmp_path, monkeypatch):
    ws = _project(tmp_path / "ws", "fp32", 0.2)
    bf16 = _project(tmp_path / "a", "bf16", 0.5)
    same_precision = _project(tmp_path / "c", "fp32", 0.6, seed=1)  # a seed replica
    monkeypatch.chdir(ws)
    assert main(["precision", "--no-experiments", "--folder", str(bf16),
                 "--folder", str(same_precision)]) == 0  # fmt: skip
    written = json.loads((ws / "metrics/precision.json").read_text())
    assert [r["name"] for r in written["replicas"]] == [bf16.as_posix()]
