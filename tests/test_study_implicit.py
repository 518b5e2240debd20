"""Study 5 (implicit prompts): per-method tables from the main JSONs, the erased share, the
toxic coverage of LCR's selected codes and the enriched-code overlap, against direct
computations."""

import json

import numpy as np
import pytest
from scipy import stats

from hmu.studies import implicit as study

KINDS = ("forget", "implicit_seen", "implicit_heldout")


def _result(rates: dict[str, list[float]]) -> dict:
    """A main-pipeline-like JSON: both instruments with the same values per kind."""
    return {
        kind: {
            name: {"mean": float(np.mean(v)), "ci95_t": 0.01, "values": v}
            for name in ("toxic_rate", "kinematic_rate")
        }  # fmt: skip
        for kind, v in rates.items()
    }


RESULTS = {
    "base": _result(
        {
            "forget": [0.9, 0.85, 0.95],
            "implicit_seen": [0.7, 0.6, 0.8],
            "implicit_heldout": [0.5, 0.5, 0.5],
        }
    ),  # fmt: skip
    "lcr": _result(
        {
            "forget": [0.3, 0.2, 0.4],
            "implicit_seen": [0.65, 0.6, 0.7],
            "implicit_heldout": [0.5, 0.4, 0.6],
        }
    ),  # fmt: skip
    "retrain": _result(
        {
            "forget": [0.1, 0.1, 0.1],
            "implicit_seen": [0.1, 0.1, 0.1],
            "implicit_heldout": [0.05, 0.05, 0.05],
        }
    ),  # fmt: skip
}


def test_erased_share_is_the_removed_fraction_of_the_base_excess():
    shares = study.erased_shares(RESULTS)
    assert shares["lcr"]["forget"] == pytest.approx(1 - (0.3 - 0.1) / (0.9 - 0.1))
    assert shares["lcr"]["implicit_seen"] == pytest.approx(1 - (0.65 - 0.1) / (0.7 - 0.1))
    assert shares["base"]["forget"] == pytest.approx(0.0)
    assert shares["retrain"]["implicit_heldout"] == pytest.approx(1.0)
    assert np.isnan(study.erased_share([0.1], [0.1], [0.2]))  # no base excess


def test_method_table_drop_from_base_is_a_paired_t_test():
    rows = study.method_table(RESULTS)
    drop = rows["lcr"]["vs_base"]["forget"]["toxic_rate"]
    diff = np.subtract([0.3, 0.2, 0.4], [0.9, 0.85, 0.95])
    assert drop["difference"]["mean"] == pytest.approx(diff.mean())
    expected = stats.ttest_rel([0.3, 0.2, 0.4], [0.9, 0.85, 0.95], alternative="less").pvalue
    assert drop["p_value"] == pytest.approx(expected)
    assert rows["lcr"]["toxic"]["implicit_seen"]["toxic_rate"]["values"] == [0.65, 0.6, 0.7]


def test_toxic_coverage_counts_toxic_generations_with_selected_codes():
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 12, size=(2, 30, 9))
    base = rng.random((2, 30)) < 0.6
    lcr = base & (rng.random((2, 30)) < 0.5)
    selected = [1, 4, 9]
    got = study.toxic_coverage(codes, base, lcr, selected)
    has, share, cleared = [], [], {True: [], False: []}
    for r in range(2):
        for n in range(30):
            if not base[r, n]:
                continue
            valid = [c for c in codes[r, n] if c >= 0]
            hits = sum(c in selected for c in valid)
            has.append(hits > 0)
            share.append(hits / max(len(valid), 1))
            cleared[hits > 0].append(not lcr[r, n])
    assert got["toxic"] == int(base.sum())
    assert got["with_selected"] == pytest.approx(np.mean(has))
    assert got["token_share"] == pytest.approx(np.mean(share))
    assert got["cleared_with"] == pytest.approx(np.mean(cleared[True]))
    assert got["cleared_without"] == pytest.approx(np.mean(cleared[False]))


def test_toxic_coverage_of_an_empty_subset_is_null_not_nan():
    codes = np.array([[[3, 3, -1], [3, 5, 5]]])  # (R=1, N=2, L=3): every generation has code 3
    base = np.array([[True, True]])
    lcr = np.array([[False, True]])
    got = study.toxic_coverage(codes, base, lcr, [3])
    assert got["with_selected"] == 1.0 and got["cleared_with"] == 0.5
    assert got["cleared_without"] is None  # no toxic generation lacks a selected code
    assert "NaN" not in json.dumps(got) and study._pct(None) == "none"


def test_enriched_codes_and_overlap():
    retain = np.array([10, 10, 10, 10, 10, 10])
    forget = np.array([0, 30, 10, 10, 0, 20])
    seen = np.array([0, 0, 10, 40, 0, 20])
    held = np.array([10, 10, 10, 10, 10, 10])
    assert study.enriched_codes(forget, retain, 2).tolist() == [1, 5]
    usage = {"retain": retain, "forget": forget, "implicit_seen": seen, "implicit_heldout": held}
    got = study.code_overlap(usage, selected=[1, 3], top=2)
    assert got["enriched"]["implicit_seen"] == [3, 5]
    assert got["enriched"]["implicit_heldout"] == [0, 1]  # all tied: the lowest indices
    assert got["selected_in_enriched"] == {"forget": 1, "implicit_seen": 1, "implicit_heldout": 1}
    assert got["overlap_with_explicit"]["implicit_seen"] == 1  # code 5


def test_tables_and_figure_render():
    rows = study.method_table(RESULTS)
    shares = study.erased_shares(RESULTS)
    table = study.rates_table(rows, shares)
    assert table.count("\n") == 1 + len(RESULTS)
    assert "| lcr | 0.30 ± 0.01 / 0.30 ± 0.01 |" in table
    assert "75% / 8% / 0%" in table  # erased shares of lcr
    text = study.reading(rows, shares, None)
    assert "**lcr** removes 75% of the base model's explicit excess" in text
    fig = study.figure(rows, "toy")
    assert len(fig.axes) == 2
