"""The five-line report summary, on a hand-made report.json whose answers are known."""

from hmu.eval.summary import summary_lines

# per method: explicit classifier excess, its ci95_t, implicit-seen excess, retain FID, R@1
ROWS = {
    ("a", "momask"): {"base": (0.7, 0.05, 0.5, 1.0, 0.5), "retrain": (0.0, 0.0, 0.0, 1.2, 0.48),
                      "finetune": (0.4, 0.1, 0.4, 1.4, 0.45), "lcr": (0.1, 0.05, 0.2, 1.1, 0.49)},
    ("b", "momask"): {"base": (0.5, 0.05, 0.3, 2.0, 0.3), "retrain": (0.0, 0.0, 0.0, 2.2, 0.28),
                      "finetune": (0.3, 0.1, 0.2, 2.4, 0.25), "lcr": (0.2, 0.3, 0.1, 2.1, 0.29)},
}  # fmt: skip
KEYS = ("excess.forget.toxic_rate", "excess.forget.toxic_rate_ci95_t",
        "excess.implicit_seen.toxic_rate", "retain.fid", "retain.r1")  # fmt: skip


def _report(rows=ROWS) -> dict:
    """A flat report.json with ignored keys (Real motion, timings-free agreement) mixed in."""
    report = {"a.real.forget.fid": 0.0, "a.momask.agreement.forget.kinematic_rate": 0.9,
              "all.all.agreement.forget.kinematic_rate": 0.8}  # fmt: skip
    for (ds, model), methods in rows.items():
        for method, values in methods.items():
            for key, value in zip(KEYS, values, strict=True):
                report[f"{ds}.{model}.{method}.{key}"] = value
    return report


def test_five_lines_with_the_winner_and_its_numbers():
    lines = summary_lines(_report())
    assert len(lines) == 5 and all(line.startswith("- **") for line in lines)
    assert "FT, LCR plus base and D_r on a, b x momask (2 settings)" in lines[0]
    assert "LCR has the lowest explicit toxic rate in excess of D_r in 2 of 2 settings" in lines[1]
    assert "classifier base +0.60 -> LCR +0.15" in lines[1]  # means of (0.7, 0.5), (0.1, 0.2)
    assert "excludes 0 in 1 of 2 settings" in lines[1]  # 0.1 > 0.05, not 0.2 > 0.3
    assert "kinematic" not in lines[1]  # no kinematic rates in this report
    assert "base +0.40 -> LCR +0.15 (seen templates)" in lines[2]
    assert "held-out" not in lines[2]
    assert "FID base 1.50 -> LCR 1.60 (D_r 1.70)" in lines[3]
    assert "R@1 base 0.400 -> LCR 0.390 (D_r 0.380)" in lines[3]
    assert "not given" in lines[4]


def test_marks_and_the_majority_winner_lead():
    third = {"base": (0.9, 0.1, 0.9, 1, 1), "finetune": (0.0, 0.1, 0.2, 1, 1),
             "lcr": (0.5, 0.1, 0.5, 1, 1)}  # fmt: skip
    rows = {**ROWS, ("c", "bamm"): third}
    marks = {("a", "momask"): {"lcr": "best"}, ("b", "momask"): {"lcr": "tie", "finetune": "tie"},
             ("c", "bamm"): {"finetune": "best"}}  # fmt: skip
    report = _report(rows) | {"a.momask.lcr.excess.forget.kinematic_rate": 0.3,
                              "a.momask.base.excess.forget.kinematic_rate": 0.6}  # fmt: skip
    lines = summary_lines(report, marks)
    assert "LCR" in lines[1] and "in 2 of 3 settings" in lines[1]
    assert "kinematic detector base +0.60 -> LCR +0.30" in lines[1]
    assert "significantly best on the explicit classifier rate" in lines[4]
    assert "in 1 of 3 settings and tied with the best (≈) in 1" in lines[4]


def test_no_excess_says_so_in_one_line():
    lines = summary_lines({"a.momask.base.retain.fid": 1.0, "a.momask.lcr.forget.toxic_rate": 0.2})
    assert len(lines) == 1 and "D_r reference or the classifier is missing" in lines[0]
