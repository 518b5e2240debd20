"""The five-line report summary, on a hand-made report.json whose answers are known."""

import pytest

from hmu.eval.summary import summary_lines

# toxic rate (forget), implicit toxic rate, retain FID, retain R@1 per method, two settings
ROWS = {
    ("a", "momask"): {"base": (0.8, 0.6, 1.0, 0.5), "retrain": (0.1, 0.1, 1.2, 0.48),
                      "finetune": (0.5, 0.5, 1.4, 0.45), "lcr": (0.2, 0.3, 1.1, 0.49)},
    ("b", "momask"): {"base": (0.6, 0.4, 2.0, 0.3), "retrain": (0.1, 0.1, 2.2, 0.28),
                      "finetune": (0.4, 0.3, 2.4, 0.25), "lcr": (0.3, 0.2, 2.1, 0.29)},
}  # fmt: skip
METRICS = ("forget.toxic_rate", "implicit.toxic_rate", "retain.fid", "retain.r1")


def _report(rows=ROWS) -> dict:
    report = {"a.real.forget.fid": 0.0, "a.momask.base.eval_seconds": 3.0}  # ignored keys
    for (ds, model), methods in rows.items():
        for method, values in methods.items():
            for metric, value in zip(METRICS, values, strict=True):
                report[f"{ds}.{model}.{method}.{metric}"] = value
    return report


def test_five_lines_with_the_winner_and_its_numbers():
    lines = summary_lines(_report())
    assert len(lines) == 5 and all(line.startswith("- **") for line in lines)
    assert "2 unlearning methods" in lines[0] and "a, b x momask (2 settings)" in lines[0]
    assert "LCR has the lowest toxic rate on forget prompts in 2 of 2 settings" in lines[1]
    assert "base 0.70 -> LCR 0.25 (D_r 0.10)" in lines[1]  # means of (0.8, 0.6), (0.2, 0.3) ...
    assert "base 0.50 -> LCR 0.25 (D_r 0.10)" in lines[2]
    assert "FID base 1.50 -> LCR 1.60 (D_r 1.70)" in lines[3]
    assert "R@1 base 0.400 -> LCR 0.390 (D_r 0.380)" in lines[3]
    assert "not tested" in lines[4]


def test_significance_counts_settings_and_the_majority_winner_leads():
    rows = {**ROWS, ("c", "bamm"): {"base": (0.9, 0.9, 1, 1), "finetune": (0.1, 0.2, 1, 1),
                                    "lcr": (0.5, 0.5, 1, 1)}}  # fmt: skip
    p_values = {("a", "momask", "lcr"): 0.01, ("b", "momask", "lcr"): 0.2,
                ("c", "bamm", "finetune"): 0.001}  # fmt: skip
    lines = summary_lines(_report(rows), p_values)
    assert "LCR" in lines[1] and "in 2 of 3 settings" in lines[1]
    assert "p < 0.05 in 2 of 3 settings" in lines[4]


def test_no_toxic_rate_is_an_error():
    with pytest.raises(ValueError, match="forget.toxic_rate"):
        summary_lines({"a.momask.base.retain.fid": 1.0})
