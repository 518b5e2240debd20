"""The params.yaml schema: the real file passes; bad values give one line naming key, value and
what is allowed; stages check only their own blocks; `hmu check-params` checks the whole file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hmu.cli import main as hmu_main
from hmu.eval.protocol import ProtocolConfig
from hmu.params_schema import ParamsError, check_params, validate_params

REAL_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def real() -> dict:
    return yaml.safe_load(REAL_PARAMS.read_text(encoding="utf-8"))


def _with(params: dict, dotted: str, value) -> dict:
    """A deep copy of params with params[a][b]... = value (dotted = 'a.b...')."""
    changed = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def test_the_real_params_file_passes():
    check_params(path=REAL_PARAMS)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lcr.r", "abc", "lcr.r = 'abc': should be a valid integer"),
        ("lcr.r", 3.5, "lcr.r = 3.5: should be a valid integer"),
        ("lcr.alpha", -1, "lcr.alpha = -1: should be greater than or equal to 0"),
        (
            "protocol.repetitions",
            0,
            "protocol.repetitions = 0: should be greater than or equal to 2",
        ),
        (
            "protocol.repetitions",
            1,
            "protocol.repetitions = 1: should be greater than or equal to 2",
        ),
        ("lcr.rule", "max", "lcr.rule = 'max': should be 'ratio' or 'union'"),
        ("vq.small.train.lr", "1e-3", "vq.small.train.lr = '1e-3': should be a valid number"),
        ("finetune.residual", 1, "finetune.residual = 1: should be a valid boolean"),
    ],
)
def test_a_bad_value_names_key_value_and_what_is_allowed(real, key, value, expected):
    with pytest.raises(ParamsError) as err:
        validate_params(_with(real, key, value), key.split(".")[0])
    assert str(err.value) == f"params.yaml: {expected}"


def test_typos_and_missing_keys_are_named(real):
    typo = _with(real, "lcr.radius", 3)
    with pytest.raises(ParamsError, match=r"^params\.yaml: unknown key lcr\.radius \("):
        validate_params(typo, "lcr")
    missing = copy.deepcopy(real)
    del missing["protocol"]["seed"]
    with pytest.raises(ParamsError, match=r"^params\.yaml: missing key protocol\.seed$"):
        validate_params(missing)
    unconfigured = _with(real, "datasets", [*real["datasets"], "kit"])
    with pytest.raises(ParamsError, match="datasets lists 'kit' but data.kit is missing"):
        validate_params(unconfigured)


def test_a_stage_checks_only_its_blocks(real):
    bad = _with(_with(real, "lcr.r", "abc"), "protocol.repetitions", 1)
    validate_params(bad, "edit", "toxicity.humanml3d")  # neither problem is in these blocks
    with pytest.raises(ParamsError) as err:
        validate_params(bad)
    assert "lcr.r" in str(err.value) and "protocol.repetitions" in str(err.value)
    assert "\n" not in str(err.value)


def test_check_params_command(tmp_path, real, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(real), encoding="utf-8")
    bad.write_text(yaml.safe_dump(_with(real, "lcr.r", 3.5)), encoding="utf-8")
    assert hmu_main(["check-params", "--params", str(good)]) == 0
    assert hmu_main(["check-params", "--params", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"hmu check-params: error: {bad}: lcr.r = 3.5: should be a valid integer"


def test_protocol_config_refuses_a_single_repetition():
    with pytest.raises(ValueError, match=r"protocol\.repetitions = 1 out of range"):
        ProtocolConfig(repetitions=1).validate()
    ProtocolConfig(repetitions=2).validate()
