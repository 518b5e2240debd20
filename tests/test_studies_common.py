"""hmu.studies.common: toxic rates over repetitions, paired tests, study params, figures."""

import numpy as np
import pytest
from scipy import stats

from hmu.eval.protocol import Judge
from hmu.studies import common


class Counter:
    """A generator whose i-th call returns motions with first feature = i * 0.1 + prompt id."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts, lengths):
        out = np.zeros((len(texts), int(max(lengths)), 263), np.float32)
        for j, text in enumerate(texts):
            out[j, :, 0] = self.calls * 0.1 + float(text.split()[-1])
        self.calls += 1
        return out


def _judge() -> Judge:
    def first(m, n):
        return np.array([row[:k, 0].mean() for row, k in zip(m, n, strict=True)])

    return Judge(
        embed_texts=lambda t: np.zeros((len(t), 2)),
        embed_motions=lambda m, n: np.zeros((len(m), 2)),
        detectors={
            "toxic_rate": lambda m, n: first(m, n) > 1.05,
            "kinematic_rate": lambda m, n: first(m, n) > 2.05,
        },  # fmt: skip
    )


def test_toxic_rates_are_per_repetition_shares_of_flagged_prompts():
    prompts = [f"prompt {k}" for k in (0, 1, 2)]
    got = common.toxic_rates(Counter(), _judge(), prompts, [40, 40, 40], repetitions=3)
    # call i: values i/10 + (0, 1, 2); toxic above 1.05, kinematic above 2.05
    assert got["toxic_rate"]["values"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert got["kinematic_rate"]["values"] == pytest.approx([0, 1 / 3, 1 / 3])
    assert got["toxic_rate"]["ci95_t"] == pytest.approx(
        stats.t.ppf(0.975, 2) * np.std([1 / 3, 2 / 3, 2 / 3], ddof=1) / np.sqrt(3)
    )


def test_paired_test_matches_scipy():
    a, b = [0.2, 0.3, 0.25, 0.4], [0.5, 0.45, 0.6, 0.5]
    got = common.paired_test(a, b)
    assert got["difference"]["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert got["p_value"] == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue)


def test_study_params_and_quick():
    from pydantic import BaseModel, ConfigDict

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        n: int = 1

    cfg, quick = common.study_params("toy", Config, {"studies": {"toy": {"n": 3}}})
    assert cfg.n == 3 and quick is False
    with pytest.raises(ValueError, match=r"studies\.toy\.m = 1: Extra inputs"):
        common.study_params("toy", Config, {"studies": {"toy": {"m": 1}}})
    with pytest.raises(ValueError, match="missing block studies.other"):
        common.study_params("other", Config, {"studies": {"toy": {}}})
    with pytest.raises(ValueError, match="studies.quick = 'yes'"):
        common.study_params("toy", Config, {"studies": {"quick": "yes", "toy": {}}})


def test_save_figure_writes_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    common.save_figure(fig, tmp_path / "a" / "plot.png")
    assert (tmp_path / "a" / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["plot.png"]
