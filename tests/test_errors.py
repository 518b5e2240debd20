"""Bad input ends the CLI and the stages with one line naming the file and the fix, exit code 2,
no traceback: damaged checkpoints and method.json, non-UTF-8 prompts, unknown methods, bad
params, and official checkpoints whose head count must be given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from test_generators import write_method, write_tiny_models
from tiny_setup import FakeEncoder

import hmu.generate as generate_module
from hmu import errors
from hmu.cli import main as cli_main
from hmu.generate import STAGE_OF_METHOD
from hmu.models import official
from hmu.models.momask import MaskTransformer

ROOT = Path(__file__).resolve().parents[1]
TRANS = Path("models/tiny/momask_all/trans.safetensors")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny project with models/tiny/momask/base; text encoding faked."""
    write_method(tmp_path, write_tiny_models(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate_module, "load_text_encoder", lambda *a, **k: FakeEncoder())
    return tmp_path


def _generate(capsys, *extra: str) -> tuple[int, str]:
    """Run `hmu generate` on the tiny project -> (exit code, stderr)."""
    args = ["generate", "--dataset", "tiny", "--model", "momask", "--length", "40"]
    code = cli_main(
        [*args, "--out", "o.npy", *extra] + ([] if "--prompts" in extra else ["--text", "x"])
    )
    return code, capsys.readouterr().err


def _damage_missing_key(path: Path) -> None:
    state = load_file(path)
    del state["cond_emb.bias"]
    save_file(state, path)


def _damage_shape(path: Path) -> None:
    state = load_file(path)
    state["cond_emb.bias"] = torch.zeros(3)
    save_file(state, path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_damage_missing_key, "missing keys (1): cond_emb.bias"),
        (_damage_shape, "cond_emb.bias: checkpoint (3,) vs model (32,)"),
        (_truncate, "not a readable safetensors file"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_file_and_fix(project, capsys, damage, message):
    damage(TRANS)
    code, err = _generate(capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"hmu generate: error: {TRANS}") and message in err
    assert err.rstrip().endswith(errors.RESTORE)


def test_corrupt_method_json_names_file_line_and_column(project, capsys):
    method_json = Path("models/tiny/momask/base/method.json")
    method_json.write_text('{"vq": "models/tiny/vq_all",\n "trans": }')
    code, err = _generate(capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"{method_json}: not valid JSON (line 2, column 11: Expecting value)" in err


def test_non_utf8_prompts_name_file_and_line(project, capsys):
    prompts = project / "prompts.txt"
    prompts.write_bytes(b"a man walks\nun homme saute\n" + "caf\u00e9\n".encode("latin-1"))
    code, err = _generate(capsys, "--prompts", str(prompts))
    assert code == 2
    assert (
        err
        == f"hmu generate: error: --prompts {prompts}: line 3 is not UTF-8 text; save it as UTF-8\n"
    )


def test_a_missing_method_suggests_only_what_exists(project, capsys):
    code, err = _generate(capsys, "--method", "foo")
    assert code == 2 and "existing methods: base" in err
    assert "hmu import-official --method foo" in err and "dvc repro" not in err
    code, err = _generate(capsys, "--method", "lcr")
    assert code == 2 and "run `dvc repro unlearn@tiny-momask-lcr`" in err


def test_suggested_stages_exist_in_dvc_yaml():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for method, stage in STAGE_OF_METHOD.items():
        assert method in stages[stage]["matrix"]["method"], (method, stage)


def test_official_load_names_num_heads_when_it_does_not_divide(tmp_path):
    torch.manual_seed(0)
    sizes = dict(num_tokens=8, code_dim=8, latent_dim=32, ff_size=16, num_layers=1, clip_dim=8)
    model = MaskTransformer(**sizes, num_heads=4)
    path = tmp_path / "latest.tar"
    torch.save({"t2m_transformer": model.state_dict()}, path)
    with pytest.raises(ValueError) as err:
        official.load(path, "mask_transformer")
    message = str(err.value)
    assert "latent_dim 32 is not divisible by num_heads 6" in message
    assert "config={'num_heads': N}" in message and "[1, 2, 4, 8, 16]" in message
    loaded = official.load(path, "mask_transformer", config={"num_heads": 4})
    assert torch.equal(loaded.cond_emb.weight, model.cond_emb.weight)


def test_a_stage_refuses_bad_params_in_one_line(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["lcr"]["r"] = "abc"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HMU_PARAMS": str(bad), "OMP_NUM_THREADS": "1"}
    env.pop("HMU_DEBUG", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "unlearn.py"), "tiny-momask-lcr"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"unlearn: error: {bad}: lcr.r = 'abc': should be a valid integer\n"
    assert not (tmp_path / "models").exists()


def test_exits_on_bad_input_keeps_bugs_loud(capsys):
    def missing():
        raise KeyError("params.yaml: missing key 'r' under 'lcr'")

    with pytest.raises(SystemExit) as stop:
        errors.exits_on_bad_input(missing, prog="stage")()
    assert stop.value.code == 2
    assert capsys.readouterr().err == "stage: error: params.yaml: missing key 'r' under 'lcr'\n"

    def bug():
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        errors.exits_on_bad_input(bug, prog="stage")()
