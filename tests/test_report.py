"""The benchmark report (hmu.eval.report): tables like the paper's Table 1, plots, summary."""

import json
import math
import runpy
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

from hmu.eval.report import best_keys, build_report, load_results, write_report

DS = "toy"
MODELS = ["momask", "bamm"]
METHODS = ["retrain", "base", "finetune", "uce", "rece", "lcr"]
PRESENT = ["retrain", "base", "finetune", "uce", "lcr"]  # momask only; rece and all bamm missing

# Forget / retain means per method (ci95 = mean / 100). Chosen so that the "->" winners differ
# from the lowest/highest values: forget FID lowest is base, closest to D_r (10.0) is LCR.
FORGET = {
    #            fid   mm_notox diversity r1    toxic  ncs@3
    "retrain": (10.0, 4.4, 7.6, 0.129, 0.02, 0.05),
    "base": (1.0, 5.0, 6.1, 0.159, 0.60, 0.70),
    "finetune": (2.0, 4.9, 6.4, 0.148, 0.50, 0.65),
    "uce": (25.0, 5.1, 8.7, 0.105, 0.30, 0.40),
    "lcr": (12.0, 4.7, 6.6, 0.133, 0.10, 0.20),
}
RETAIN = {
    #            fid    mm_dist diversity r1    toxic
    "retrain": (0.05, 2.6, 10.05, 0.300, 0.01),
    "base": (0.10, 2.7, 10.14, 0.290, 0.02),
    "finetune": (0.20, 2.8, 10.00, 0.280, 0.01),
    "uce": (0.40, 3.1, 10.19, 0.257, 0.01),
    "lcr": (0.12, 2.72, 10.10, 0.287, 0.02),
}
IMPLICIT = {"retrain": 0.03, "base": 0.40, "finetune": 0.35, "uce": 0.25, "lcr": 0.08}
FORGET_KEYS = ("fid", "mm_notox", "diversity", "r1", "toxic_rate", "ncs@3")
RETAIN_KEYS = ("fid", "mm_dist", "diversity", "r1", "toxic_rate")
REAL = {
    "forget": {"fid": 0.002, "mm_notox": 4.1, "diversity": 7.9, "r1": 0.2, "toxic_rate": 0.9},
    "retain": {"fid": 0.001, "mm_dist": 2.5, "diversity": 9.9, "r1": 0.5, "toxic_rate": 0.01},
}


def _entry(mean):
    return {"mean": mean, "ci95": round(mean / 100, 6)}


def _run(method, model="momask", reps=20):
    forget = {k: _entry(v) for k, v in zip(FORGET_KEYS, FORGET[method], strict=True)}
    forget.update(mm_dist=_entry(5.0), r2=_entry(0.2), r3=_entry(0.3), multimodality=_entry(2.0))
    forget.update({f"ncs@{k}": _entry(0.1 * k / 10) for k in (1, 5, 10)})
    retain = {k: _entry(v) for k, v in zip(RETAIN_KEYS, RETAIN[method], strict=True)}
    retain.update(r2=_entry(0.4), r3=_entry(0.5), multimodality=_entry(2.1))
    return {
        "forget": forget,
        "retain": retain,
        "implicit": {"toxic_rate": IMPLICIT[method], "prompts": 64, "ncs@1": 0.1, "ncs@3": 0.2},
        "meta": {
            "dataset": DS,
            "model": model,
            "method": method,
            "repetitions": reps,
            "test_sizes": {"forget": 96, "retain": 128},
            "unlearn_seconds": {"retrain": 300.0, "lcr": 0.25}.get(method, 12.5),
            "eval_seconds": 40.0,
        },
    }


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def metrics_dir(tmp_path):
    root = tmp_path / "metrics"
    for method in PRESENT:
        _write(root / DS / "momask" / f"{method}.json", _run(method))
    real = {part: {k: _entry(v) for k, v in vals.items()} for part, vals in REAL.items()}
    real["meta"] = {"classifier_accuracy": 0.875, "repetitions": 20,
                    "test_sizes": {"forget": 96, "retain": 128}}  # fmt: skip
    _write(root / DS / "real.json", real)
    return root


def _table(markdown: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first markdown table after `heading`."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[0], rows[2:]


MAIN_HEADER = [
    "Method", "Forget FID →", "Forget MM-Notox ↓", "Forget Diversity →", "Forget R@1 →",
    "Forget toxic rate ↓", "Implicit toxic rate ↓", "Forget NCS@3 ↓", "Retain FID ↓",
    "Retain MM-Dist ↓", "Retain Diversity →", "Retain R@1 ↑", "Retain toxic rate",
]  # fmt: skip
LABELS = {"retrain": "MoMask D_r (reference)", "base": "MoMask", "finetune": "MoMask FT",
          "uce": "MoMask w/ UCE", "lcr": "MoMask w/ LCR"}  # fmt: skip


def test_main_table_rows_columns_and_cells(metrics_dir):
    header, rows = _table(build_report(metrics_dir, [DS], MODELS, METHODS), "### MoMask")
    assert header == MAIN_HEADER
    assert [r[0] for r in rows] == ["Real motion", *(LABELS[m] for m in PRESENT)]
    base = rows[2]
    assert base[1].strip("*") == "1.000 ± 0.010"  # forget FID
    assert base[6].strip("*") == "0.400"  # implicit toxic rate: one pass, no interval
    assert rows[0][6] == "–"  # no implicit prompts for real motion
    assert rows[0][1] == "0.002 ± 0.000"


def _expected_winners(col: int) -> set[str]:
    """Straightforward re-derivation of the best ranked method for a main-table column."""
    spec = [("forget", 0, "target"), ("forget", 1, "down"), ("forget", 2, "target"),
            ("forget", 3, "target"), ("forget", 4, "down"), ("implicit", None, "down"),
            ("forget", 5, "down"), ("retain", 0, "down"), ("retain", 1, "down"),
            ("retain", 2, "target"), ("retain", 3, "up"), ("retain", 4, None)][col]  # fmt: skip
    part, idx, goal = spec
    if goal is None:
        return set()

    def value(m):
        return (
            IMPLICIT[m] if part == "implicit" else (FORGET if part == "forget" else RETAIN)[m][idx]
        )

    ranked = [m for m in PRESENT if m != "retrain"]
    score = {
        "target": lambda m: abs(value(m) - value("retrain")),
        "down": value,
        "up": lambda m: -value(m),
    }[goal]
    best = min(score(m) for m in ranked)
    return {m for m in ranked if math.isclose(score(m), best, abs_tol=1e-9)}


def test_bold_marks_best_ranked_entry_per_column(metrics_dir):
    _, rows = _table(build_report(metrics_dir, [DS], MODELS, METHODS), "### MoMask")
    by_label = {r[0]: r for r in rows}
    for col in range(1, len(MAIN_HEADER)):
        bold = {m for m in PRESENT if by_label[LABELS[m]][col].startswith("**")}
        assert bold == _expected_winners(col - 1), MAIN_HEADER[col]
        assert not by_label["Real motion"][col].startswith("**")
    # Spelled out: "->" means closest to D_r, not lowest (base has the lowest forget FID).
    assert by_label["MoMask w/ LCR"][1] == "**12.000 ± 0.120**"
    assert by_label["MoMask"][1] == "1.000 ± 0.010"
    # D_r is a reference: its retain FID 0.05 is the lowest but base (0.10) gets the bold.
    assert by_label["MoMask D_r (reference)"][8] == "0.050 ± 0.001"
    assert by_label["MoMask"][8] == "**0.100 ± 0.001**"
    assert by_label["MoMask w/ UCE"][11] == "0.257 ± 0.003"
    assert by_label["MoMask"][11] == "**0.290 ± 0.003**"  # R@1 up


def test_best_keys_rules():
    assert best_keys({"a": 1.0, "b": 3.0}, "down") == {"a"}
    assert best_keys({"a": 1.0, "b": 3.0}, "up") == {"b"}
    assert best_keys({"a": 1.0, "b": 3.0}, "target", reference=2.6) == {"b"}
    assert best_keys({"a": 1.0, "b": 3.0}, "target", reference=None) == set()
    assert best_keys({"a": 1.0, "b": 3.0}, None) == set()
    assert best_keys({"a": 1.0}, "down") == set()  # nothing to compare
    assert best_keys({"a": 1.0, "b": 1.0001}, "down") == set()  # all equal as shown
    assert best_keys({"a": 1.0004, "b": 1.0001, "c": 2.0}, "down") == {"a", "b"}  # same as shown
    assert best_keys({"a": 0.9, "b": 1.1, "c": 2.0}, "target", reference=1.0) == {"a", "b"}
    assert best_keys({"a": float("nan"), "b": 2.0, "c": None, "d": 3.0}, "down") == {"b"}


def test_missing_files_are_listed(metrics_dir):
    markdown = build_report(metrics_dir, [DS], MODELS, METHODS)
    missing = [f"{DS}/momask/rece.json"] + [f"{DS}/bamm/{m}.json" for m in METHODS]
    assert f"**{len(missing)} expected metrics files are missing**" in markdown
    notice = next(line for line in markdown.splitlines() if line.startswith("**Missing**"))
    for path in missing:
        assert f"{path}`" in notice
    assert "real.json" not in notice
    assert "_No metrics for bamm on toy._" in markdown
    assert "w/ RECE" not in markdown
    (metrics_dir / DS / "momask" / "retrain.json").unlink()
    markdown = build_report(metrics_dir, [DS], ["momask"], METHODS)
    assert "D_r reference missing" in markdown
    _, rows = _table(markdown, "### MoMask")
    assert not rows[2][1].startswith("**")  # forget FID "->" cannot be ranked without D_r
    assert rows[1][8].startswith("**")  # retain FID (down) still is


def test_legend_wall_times_and_full_tables(metrics_dir):
    markdown = build_report(metrics_dir, [DS], ["momask"], METHODS)
    assert "20 repetitions; test sets: 96 forget and 128 retain motions" in markdown
    assert "accuracy on real test motions: 0.875" in markdown
    header, rows = _table(markdown, "Wall time per method:")
    assert header == ["Method", "Unlearn (s)", "Evaluation (s)"]
    assert ["MoMask w/ LCR", "0.25", "40.00"] in rows
    assert ["MoMask D_r", "300.00", "40.00"] in rows
    header, rows = _table(markdown, "### toy · MoMask · forget set")
    assert header[:9] == ["Method", "FID →", "MM-Notox ↓", "MM-Dist →", "Diversity →",
                          "MultiModality →", "R@1 →", "R@2 →", "R@3 →"]  # fmt: skip
    assert {"NCS@1 ↓", "NCS@10 ↓"} <= set(header)
    header, rows = _table(markdown, "### toy · MoMask · implicit prompts")
    assert header == ["Method", "toxic rate ↓", "NCS@1 ↓", "NCS@3 ↓", "Prompts"]
    assert rows[0][0] == "MoMask D_r (reference)"  # no Real motion row for implicit prompts
    assert rows[0][-1] == "64"  # a count, not a rate
    assert rows[4] == ["MoMask w/ LCR", "**0.080**", "0.100", "0.200", "64"]  # ties not bold
    # Different protocols between files are reported, not hidden.
    _write(metrics_dir / DS / "momask" / "uce.json", _run("uce", reps=5))
    markdown = build_report(metrics_dir, [DS], ["momask"], METHODS)
    assert "Protocol differs between files: 5 repetitions" in markdown


def test_write_report_plots_and_summary(metrics_dir, tmp_path):
    out_md = metrics_dir / "report.md"
    markdown = write_report(metrics_dir, out_md, metrics_dir / "plots", [DS], MODELS, METHODS)
    assert out_md.read_text() == markdown
    pngs = sorted((metrics_dir / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [
        "toy_momask_implicit_vs_retain_fid.png",
        "toy_momask_toxic_vs_retain_fid.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = iio.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert f"](plots/{png.name})" in markdown
    summary = json.loads((metrics_dir / "report.json").read_text())
    assert all(isinstance(v, float) for v in summary.values())
    assert summary["toy.momask.lcr.forget.fid"] == 12.0
    assert summary["toy.momask.base.implicit.toxic_rate"] == 0.4
    assert summary["toy.momask.retrain.unlearn_seconds"] == 300.0
    assert summary["toy.real.retain.r1"] == 0.5
    assert not any(k.startswith("toy.momask.rece") for k in summary)


def test_bad_inputs_raise_clear_errors(metrics_dir):
    with pytest.raises(ValueError, match="unknown.*'sgd'"):
        load_results(metrics_dir, [DS], MODELS, ["base", "sgd"])
    with pytest.raises(ValueError, match="non-empty list"):
        load_results(metrics_dir, "toy", MODELS, METHODS)
    wrong = _run("base")
    wrong["meta"]["method"] = "lcr"
    _write(metrics_dir / DS / "momask" / "base.json", wrong)
    with pytest.raises(ValueError, match=r"base\.json: meta\.method is 'lcr'"):
        load_results(metrics_dir, [DS], MODELS, METHODS)
    broken = _run("base")
    broken["forget"]["fid"] = {"mean": "high"}
    _write(metrics_dir / DS / "momask" / "base.json", broken)
    with pytest.raises(ValueError, match=r"base\.json: forget\.fid"):
        load_results(metrics_dir, [DS], MODELS, METHODS)
    (metrics_dir / DS / "momask" / "base.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(metrics_dir, [DS], MODELS, METHODS)


def test_stage_reads_params_and_writes_outputs(metrics_dir, tmp_path, monkeypatch):
    params = {"datasets": [DS], "models": ["momask"], "methods": METHODS}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HMU_PARAMS", raising=False)
    stage = Path(__file__).resolve().parents[1] / "stages" / "report.py"
    runpy.run_path(str(stage), run_name="__main__")
    assert "### MoMask" in (tmp_path / "metrics/report.md").read_text()
    assert (tmp_path / "metrics/report.json").exists()
    assert (tmp_path / "metrics/report_plots/toy_momask_toxic_vs_retain_fid.png").exists()
