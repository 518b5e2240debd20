"""The `hmu` command line: --version, methods, viz, and generate --out .bvh."""

import json

import numpy as np
import pytest
import torch
from tiny_setup import FakeEncoder, write_method, write_tiny_models

import hmu.generate as generate_module
from hmu.cli import main
from hmu.data import skeleton as S
from hmu.methods import discover_methods, method_label

torch.set_num_threads(1)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("hmu ")


def test_methods_lists_what_exists_in_report_order(tmp_path, capsys):
    for ds, model, method in [("b", "momask", "lcr"), ("b", "momask", "retrain"),
                              ("b", "bamm", "base"), ("a", "momask", "zz_custom"),
                              ("a", "momask", "base")]:  # fmt: skip
        (tmp_path / ds / model / method).mkdir(parents=True)
        (tmp_path / ds / model / method / "method.json").write_text("{}")
    (tmp_path / "b" / "momask" / "empty").mkdir()  # no method.json: not a method
    expected = {"a": {"momask": ["base", "zz_custom"]},
                "b": {"momask": ["retrain", "lcr"], "bamm": ["base"]}}  # fmt: skip
    assert discover_methods(tmp_path) == expected
    assert list(discover_methods(tmp_path)["b"]) == ["momask", "bamm"]
    assert main(["methods", "--models-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["a momask: base zz_custom", "b momask: retrain lcr", "b bamm: base"]
    assert [method_label(m) for m in ("retrain", "finetune", "new")] == ["D_r", "FT", "new"]
    assert main(["methods", "--models-root", str(tmp_path / "none")]) == 2
    assert "dvc repro" in capsys.readouterr().err


def test_viz_renders_and_reports_unknown_ids(tmp_path, capsys):
    joints = S.forward_kinematics(np.zeros((8, 22, 3)), np.zeros((8, 3))).astype(np.float32)
    folder = tmp_path / "raw" / "humanml3d" / "new_joints"
    folder.mkdir(parents=True)
    for motion_id in ("000001", "000002", "000003"):
        np.save(folder / f"{motion_id}.npy", joints)
    root, out = str(tmp_path / "raw"), str(tmp_path / "x.gif")
    args = ["viz", "--dataset", "humanml3d", "--root", root, "--size", "48", "--out", out]
    assert main([*args, "--id", "000002"]) == 0
    assert (tmp_path / "x.gif").stat().st_size > 0
    assert main([*args, "--id", "999999"]) == 2
    assert "no motion 999999 in humanml3d; e.g. 000001, 000002" in capsys.readouterr().err


def test_generate_writes_one_bvh_per_prompt(tmp_path, monkeypatch):
    write_method(tmp_path, write_tiny_models(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate_module, "load_text_encoder", lambda *a, **k: FakeEncoder())
    base = ["generate", "--dataset", "tiny", "--model", "momask", "--length", "42"]
    texts = ["--text", "a man kicks", "--text", "a man walks"]
    assert main([*base, *texts, "--out", "m.bvh"]) == 0
    assert main([*base, *texts, "--out", "m.npy"]) == 0
    joints = np.load(tmp_path / "m.npy")  # (2, 42, 22, 3), same seed as the BVH files
    assert json.loads((tmp_path / "m.json").read_text())["lengths"] == [40, 40]
    for i in range(2):
        text = (tmp_path / f"m_{i:02d}.bvh").read_text()
        assert "Frames: 40" in text  # 4 x (42 // 4) valid frames
        root = np.array(text.splitlines()[-40].split()[:3], dtype=float) / 100.0  # cm -> m
        np.testing.assert_allclose(root, joints[i, 0, 0], atol=1e-4)
