"""Variant replicas: the cell-by-cell comparison, the report's sections and the `hmu variants`
command (hmu.eval.variants)."""

import json

import numpy as np
import pytest
import yaml

from hmu.cli import main
from hmu.eval.seeds import Run, folder_run
from hmu.eval.stats import t_halfwidth
from hmu.eval.variants import VARIANTS, compare_runs, variant_section, write_variants


def _method_json(rate_values, fid_values):
    entry = lambda v: {"mean": float(np.mean(v)), "ci95_t": t_halfwidth(v), "values": v}  # noqa: E731
    return {
        "forget": {"toxic_rate": entry(rate_values), "fid": entry(fid_values)},
        "excess": {"forget": {"toxic_rate": entry([r - 0.1 for r in rate_values])}},
        "meta": {"dataset": "d", "model": "momask", "method": "lcr"},
    }


PRECISION, BAMM = VARIANTS["precision"], VARIANTS["bamm"]


def _project(root, precision, rate, seed=0, refine="cached"):
    (root / "metrics/d/bamm").mkdir(parents=True, exist_ok=True)
    params = {
        "precision": {"train": precision, "generate": "bf16"},
        "bamm": {"refine": refine},
        "train": {"seed": seed},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    data = _method_json([rate, rate + 0.02, rate + 0.04], [5.0, 6.0, 7.0])
    (root / "metrics/d/bamm/lcr.json").write_text(json.dumps(data))
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
        PRECISION,
    )
    assert compared["reference"]["setting"] == "train fp32, generate bf16"
    replica = compared["replicas"][0]
    assert replica["setting"] == "train bf16, generate bf16"
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
        PRECISION,
    )["replicas"][0]
    assert same["cells"] == {} and same["not_replicated"] == ["d/momask/lcr"]


def test_report_section_names_the_setting_and_the_replicas(tmp_path):
    ws = _project(tmp_path, "fp32", 0.2)
    assert "No " in "\n".join(variant_section(PRECISION, ws / "metrics"))
    files = (ws / "metrics/precision.json", ws / "metrics/precision.md")
    write_variants(folder_run(ws, "ws"), [], PRECISION, *files)
    text = "\n".join(variant_section(PRECISION, ws / "metrics"))
    assert "come from train fp32, generate bf16" in text and "No other setting" in text
    other = _project(tmp_path / "other", "bf16", 0.5)
    write_variants(folder_run(ws, "ws"), [folder_run(other, "bf16-run")], PRECISION, *files)
    text = "\n".join(variant_section(PRECISION, ws / "metrics"))
    assert "bf16-run (train bf16, generate bf16) differs" in text and "| d · bamm |" in text
    assert "+0.300" in text  # excess delta 0.4 - 0.1
    assert "Δ explicit classifier rate" in files[1].read_text()
    _project(ws, "fp32", 0.3)  # the results changed after `hmu variants`
    assert "stale" in "\n".join(variant_section(PRECISION, ws / "metrics"))


def test_variants_command_collects_replicas_of_another_setting(tmp_path, monkeypatch):
    ws = _project(tmp_path / "ws", "fp32", 0.2)
    bf16 = _project(tmp_path / "a", "bf16", 0.5)
    same_precision = _project(tmp_path / "c", "fp32", 0.6, seed=1)  # a seed replica
    upstream = _project(tmp_path / "u", "fp32", 0.3, refine="upstream")
    monkeypatch.chdir(ws)
    folders = ["--folder", str(bf16), "--folder", str(same_precision), "--folder", str(upstream)]
    assert main(["variants", "precision", "--no-experiments", *folders]) == 0
    written = json.loads((ws / "metrics/precision.json").read_text())
    assert [r["name"] for r in written["replicas"]] == [bf16.as_posix()]
    assert main(["variants", "bamm", "--no-experiments", *folders]) == 0
    written = json.loads((ws / "metrics/refine.json").read_text())
    assert written["block"] == "bamm" and written["reference"]["setting"] == "refine cached"
    assert [r["name"] for r in written["replicas"]] == [upstream.as_posix()]
    text = "\n".join(variant_section(BAMM, ws / "metrics"))
    assert text.startswith("\n## BAMM's second pass") and "(refine upstream) differs" in text
