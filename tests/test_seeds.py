"""Training-seed replicas: the train.seed offset, pooling over seeds, experiment discovery, and
the report's section (hmu.eval.seeds)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from hmu.eval.seeds import (
    Run,
    experiment_runs,
    folder_run,
    method_results,
    pool_runs,
    results_digest,
    seed_p_value,
    seeds_section,
    write_seeds,
)
from hmu.eval.stats import t_halfwidth
from hmu.params import train_seed
from hmu.params_schema import ParamsError, validate_params
from hmu.train.finetune import finetune_config
from hmu.train.loop import TrainConfig

SCHEDULE = {"steps": 10, "batch_size": 4, "lr": 1e-3, "seed": 7}


def test_seed_offset_shifts_every_schedule_and_zero_keeps_it():
    assert TrainConfig.from_params(SCHEDULE).seed == 7
    assert TrainConfig.from_params(SCHEDULE, seed_offset=0) == TrainConfig.from_params(SCHEDULE)
    assert TrainConfig.from_params(SCHEDULE, "fp32", 3).seed == 10
    assert TrainConfig.from_params({"steps": 1, "batch_size": 1, "lr": 1.0}, None, 2).seed == 2
    assert finetune_config(1, {"batch_size": 4, "lr": 1e-4, "seed": 1}, 8, None, 5).seed == 6


def test_train_seed_param_defaults_to_zero_and_is_checked():
    assert train_seed({}) == 0
    assert train_seed({"train": {"seed": 4}}) == 4
    params = yaml.safe_load(Path("params.yaml").read_text())
    assert train_seed(params) == 0  # the committed models
    params["train"]["seed"] = -1
    with pytest.raises(ParamsError, match="train.seed"):
        validate_params(params, "train")


def _method_json(rate_values, fid_values, excess_values):
    entry = lambda v: {"mean": float(np.mean(v)), "ci95_t": t_halfwidth(v), "values": v}  # noqa: E731
    return {
        "forget": {"toxic_rate": entry(rate_values), "fid": entry(fid_values)},
        "excess": {"forget": {"toxic_rate": entry(excess_values)}},
        "meta": {"dataset": "d", "model": "momask", "method": "lcr"},
    }


def _memory_run(name, seed, files):
    return Run(name, seed, sorted(files), lambda path: json.dumps(files[path]))


def test_pool_runs_pools_seeds_and_repetitions():
    a = _method_json([0.1, 0.2, 0.3], [5.0, 6.0, 7.0], [0.0, 0.1, 0.2])
    b = _method_json([0.5, 0.6, 0.7], [5.5, 6.0, 6.5], [0.4, 0.5, 0.6])
    runs = [
        _memory_run(
            "ws", 0, {"metrics/d/momask/lcr.json": a, "metrics/d/momask/lcr_unlearn.json": {}}
        ),
        _memory_run("exp", 1, {"metrics/d/momask/lcr.json": b, "metrics/d/real.json": {}}),
    ]
    pooled = pool_runs(runs)
    cell = pooled["cells"]["d/momask/lcr"]["forget/toxic_rate"]
    assert cell["seed_means"] == pytest.approx([0.2, 0.6])
    assert cell["mean"] == pytest.approx(0.4)
    assert cell["ci95_t_seeds"] == pytest.approx(t_halfwidth([0.2, 0.6]))
    assert cell["ci95_t_eval"] == pytest.approx(t_halfwidth([0.1, 0.2, 0.3]))
    assert cell["pooled"]["n"] == 6
    assert cell["pooled"]["mean"] == pytest.approx(0.4)
    assert set(pooled["cells"]["d/momask/lcr"]) == {
        "forget/toxic_rate", "forget/fid", "excess.forget/toxic_rate",
    }  # fmt: skip
    # the toxic rate and its excess differ between the seeds beyond the repetitions' noise; FID
    # does not (means 6.0 and 6.0)
    assert pooled["summary"] == {"seeds": 2, "cells": 3, "tested": 3, "seeds_differ": 2}
    assert cell["p_seeds"] < 0.05 < pooled["cells"]["d/momask/lcr"]["forget/fid"]["p_seeds"]
    assert seed_p_value([[0.0, 0.0], [0.0, 0.0]]) is None and seed_p_value([[1.0, 2.0]]) is None
    # a replica that did not rerun a method (its JSON is the first run's) is left out
    copy = _memory_run("glob", 2, {"metrics/d/momask/lcr.json": a})
    partial = pool_runs([runs[0], runs[1], copy])
    assert partial["cells"] == {} and partial["not_replicated"] == {"glob": ["d/momask/lcr"]}
    with pytest.raises(ValueError, match="share a training seed"):
        pool_runs([runs[0], _memory_run("again", 0, {"metrics/d/momask/lcr.json": b})])


def _project(root, seed, rate):
    (root / "metrics/d/momask").mkdir(parents=True, exist_ok=True)
    params = {"train": {"seed": seed}, "lcr": {"r": 16}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    data = _method_json([rate, rate + 0.1], [1.0, 2.0], [rate, rate])
    (root / "metrics/d/momask/lcr.json").write_text(json.dumps(data))


def test_report_section_says_which_variance_the_intervals_cover(tmp_path):
    _project(tmp_path, 0, 0.2)
    assert "No " in "\n".join(seeds_section(tmp_path / "metrics"))
    other = tmp_path / "other"
    _project(other, 1, 0.6)
    write_seeds(
        [folder_run(tmp_path, "ws"), folder_run(other)],
        tmp_path / "metrics/seeds.json",
        tmp_path / "metrics/seeds.md",
    )
    text = "\n".join(seeds_section(tmp_path / "metrics"))
    assert "2 training seeds (0, 1)" in text and "| d · momask |" in text
    assert "0.400 ±" in text  # excess: mean of the seed means 0.2 and 0.6
    _project(tmp_path, 0, 0.3)  # the results changed after `hmu seeds`
    assert "stale" in "\n".join(seeds_section(tmp_path / "metrics"))
    assert "train.seed=1" in (tmp_path / "metrics/seeds.md").read_text()


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_experiments_of_head_that_differ_in_the_seed_alone(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@t")
    _git(tmp_path, "config", "user.name", "t")

    def commit(seed, rate, r=16):
        _project(tmp_path, seed, rate)
        if r != 16:
            params = yaml.safe_load((tmp_path / "params.yaml").read_text())
            params["lcr"]["r"] = r
            (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-q", "-m", f"seed {seed}")
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True)
        return out.stdout.decode().strip()

    head = commit(0, 0.2)
    for name, (seed, r) in {"exp-b": (2, 16), "exp-a": (1, 16), "exp-r": (1, 32)}.items():
        rev = commit(seed, 0.5 + seed / 10, r)
        _git(tmp_path, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/{name}", rev)
    _git(tmp_path, "reset", "-q", "--hard", head)
    runs = experiment_runs(tmp_path)
    assert [(run.name, run.seed) for run in runs] == [("exp-a", 1), ("exp-b", 2)]  # not exp-r
    assert [run.name for run in experiment_runs(tmp_path, ["exp-b"])] == ["exp-b"]
    with pytest.raises(ValueError, match="no DVC experiment named"):
        experiment_runs(tmp_path, ["exp-z"])
    results = method_results(runs[0])
    assert results[("d", "momask", "lcr")]["forget"]["toxic_rate"]["values"] == [0.6, 0.7]
    assert results_digest(results) != results_digest(method_results(folder_run(tmp_path)))
