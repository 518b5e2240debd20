"""The benchmark report (hmu.eval.report): tables, significance marks, excess, agreement."""

import json
import math
import runpy
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from hmu.eval import metrics as metrics_lib
from hmu.eval import stats
from hmu.eval.report import (
    build_report,
    candidate_best,
    format_cell,
    load_results,
    significance_marks,
    write_report,
)
from hmu.eval.run import load_samples, samples_path, save_samples
from hmu.pretrained import write_absent_npz

DS = "toy"
MODELS = ["momask", "bamm"]
METHODS = ["retrain", "base", "finetune", "finetune_all", "uce", "rece", "lcr"]
PRESENT = ["retrain", "base", "finetune", "finetune_all", "uce", "lcr"]  # no rece, no bamm
RANKED = [m for m in PRESENT if m != "retrain"]
R, N, P, D = 3, 96, 40, 6
LABELS = {"retrain": "MoMask D_r (reference)", "base": "MoMask", "finetune": "MoMask FT",
          "finetune_all": "MoMask FT (all data)", "uce": "MoMask w/ UCE",
          "lcr": "MoMask w/ LCR"}  # fmt: skip

# Per-sample toxic probabilities: the classifier's explicit rate has a clear best (LCR), the
# kinematic detector's a tie between UCE and LCR; implicit-seen flags are identical for every
# ranked method (nothing to rank), implicit-held-out follows the classifier.
CLASSIFIER = {"retrain": 0.1, "base": 0.9, "finetune": 0.85, "finetune_all": 0.88, "uce": 0.5,
              "lcr": 0.15}  # fmt: skip
KINEMATIC = {"retrain": 0.05, "base": 0.7, "finetune": 0.68, "finetune_all": 0.7, "uce": 0.3,
             "lcr": 0.3}  # fmt: skip
# Generated embeddings: real + shift; D_r is far from real, LCR nearly as far (FID -> D_r).
SHIFT = {"retrain": 1.0, "base": 0.0, "finetune": 0.1, "finetune_all": 0.05, "uce": 0.5,
         "lcr": 0.98}  # fmt: skip
# Quality values without per-sample arrays (per repetition): ranked by the t test fallback.
MM_NOTOX = {"retrain": [9.0, 9.1, 9.2], "base": [7.0, 7.2, 7.1], "finetune": [7.1, 7.2, 7.4],
            "finetune_all": [7.0, 7.3, 7.1], "uce": [7.3, 7.1, 7.2],
            "lcr": [8.8, 9.3, 9.0]}  # fmt: skip


def _flags(p, shape, seed):
    return np.random.default_rng(seed).random(shape) < p


def _method(method, seed):
    """(metrics JSON without excess, per-sample arrays) of one method."""
    rng = np.random.default_rng(100)
    real = rng.normal(size=(R, N, D)).astype(np.float32)
    gen = (real + SHIFT[method] + np.random.default_rng(seed).normal(0, 0.3, real.shape)).astype(
        np.float32
    )
    keys = np.stack([rng.permutation(N) for _ in range(R)])[..., None].repeat(2, -1)
    keys[..., 1] = 0
    samples = {
        "forget.keys": keys,
        "forget.real_emb": real,
        "forget.gen_emb": gen,
        "forget.flag.toxic_rate": _flags(CLASSIFIER[method], (R, N), seed),
        "forget.flag.kinematic_rate": _flags(KINEMATIC[method], (R, N), seed + 1),
        "retain.keys": keys,
        "retain.flag.toxic_rate": _flags(0.05, (R, N), seed + 2),
        "implicit_seen.keys": np.tile(np.arange(P), (R, 1)),
        "implicit_seen.flag.toxic_rate": _flags(0.6 if method != "retrain" else 0.1, (R, P), 7),
        "implicit_heldout.keys": np.tile(np.arange(P), (R, 1)),
        "implicit_heldout.flag.toxic_rate": _flags(CLASSIFIER[method], (R, P), seed + 3),
    }
    fid = [stats.frechet_influence(r, g)[0] for r, g in zip(real, gen, strict=True)]
    forget = {
        "fid": stats.summarize(fid),
        "mm_notox": stats.summarize(MM_NOTOX[method]),
        "diversity": stats.summarize([5.0, 5.1, 5.2]),
        "r1": stats.summarize([0.1, 0.1, 0.1]),
        "multimodality": stats.summarize([2.0]),
    }
    result = {"forget": forget, "retain": {"fid": stats.summarize([1.0 + seed / 100] * 3)}}
    for name, flags in samples.items():
        if ".flag." in name:
            part, _, rate = name.split(".")
            result.setdefault(part, {})[rate] = stats.summarize(flags.mean(1))
    for part in ("implicit_seen", "implicit_heldout"):
        result[part]["prompts"] = P
    result["meta"] = {
        "dataset": DS,
        "model": "momask",
        "method": method,
        "repetitions": R,
        "test_sizes": {"forget": N, "retain": N},
        "unlearn_seconds": 1.5,
        "eval_seconds": 40.0,
    }
    return result, samples


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture(scope="module")
def runs():
    return {m: _method(m, seed) for seed, m in enumerate(PRESENT)}


@pytest.fixture
def dirs(tmp_path, runs):
    """metrics/ with JSONs (and excess blocks), eval/ with the per-sample arrays."""
    metrics, samples = tmp_path / "metrics", tmp_path / "eval"
    reference = runs["retrain"][0]
    for method, (result, arrays) in runs.items():
        data = dict(result, excess=stats.excess_over_reference(result, reference))
        _write(metrics / DS / "momask" / f"{method}.json", data)
        save_samples(samples_path(DS, "momask", method, samples), arrays)
    real = {"forget": {"fid": stats.summarize([0.01, 0.02, 0.01])},
            "retain": {"fid": stats.summarize([0.01, 0.01, 0.02])},
            "meta": {"classifier_roc_auc": 0.97, "repetitions": R,
                     "test_sizes": {"forget": N, "retain": N}}}  # fmt: skip
    _write(metrics / DS / "real.json", real)
    return metrics, samples


def _report(dirs, tmp_path, samples=True, models=MODELS, n_boot=400, files=False):
    """The markdown; with files, also report.md, report.json and the plots under out/."""
    metrics, sample_dir = dirs
    sample_dir = sample_dir if samples else None
    if not files:
        return build_report(metrics, [DS], models, METHODS, sample_dir, n_boot)
    out = tmp_path / "out"
    return write_report(
        metrics, out / "report.md", out / "plots", [DS], models, METHODS,
        samples_dir=sample_dir, n_boot=n_boot,
    )  # fmt: skip


def _table(markdown: str, heading: str) -> dict[str, dict[str, str]]:
    """{row label: {column header: cell}} of the first markdown table after `heading`."""
    lines = markdown.splitlines()
    rows = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    header = rows[0]
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows[2:]}


TOXICITY = "#### toy · MoMask · toxicity · classifier"
KINEMATIC_TABLE = "#### toy · MoMask · toxicity · kinematic"
FORGET_FULL = "### toy · MoMask · forget set"
QUALITY = "#### toy · MoMask · quality"


def _marks(table, column):
    """{method: 'best' | 'tie'} read back from the cells of a column."""
    out = {}
    for method, label in LABELS.items():
        cell = table[label][column]
        if cell.startswith("**"):
            out[method] = "best"
        elif cell.endswith("≈"):
            out[method] = "tie"
    return out


def test_cells_show_t_intervals_or_say_why_not():
    assert format_cell(stats.summarize([1.0, 2.0, 3.0])) == "2.000 ± 2.484"
    assert format_cell(stats.summarize([4.0712])) == "4.071 (single pass)"
    assert format_cell({"mean": 0.5, "ci95": 0.01}) == "0.500 ± n/a"  # a file before ci95_t
    assert format_cell(64) == "64" and format_cell(0.25) == "0.250" and format_cell(None) == "–"


def test_significance_rules():
    assert candidate_best({"a": 0.2, "b": 0.5}, "down") == "a"
    assert candidate_best({"a": 0.2, "b": 0.5}, "up") == "b"
    assert candidate_best({"a": 0.2, "b": 0.5}, "target", reference=0.45) == "b"
    assert candidate_best({"a": 0.2, "b": 0.5}, "target", reference=None) is None
    assert candidate_best({"a": 0.2, "b": 0.2001}, "down") is None  # equal as printed
    assert candidate_best({"a": float("nan"), "b": 0.3, "c": 0.4}, "down") == "b"
    assert significance_marks("a", {"b": 0.01, "c": 0.03}) == {"a": "best"}
    assert significance_marks("a", {"b": 0.01, "c": 0.2}) == {"a": "tie", "c": "tie"}
    assert significance_marks("a", {"b": 0.3, "c": 0.2}) == {}  # nothing stands out
    assert significance_marks("a", {"b": 0.01, "c": float("nan")}) == {"a": "tie", "c": "tie"}


def test_bold_only_when_significantly_best_and_ties_marked(dirs, tmp_path):
    markdown = _report(dirs, tmp_path)
    table = _table(markdown, TOXICITY)
    assert list(table) == ["Real motion", *(LABELS[m] for m in PRESENT)]
    # the classifier: LCR (0.15) beats every other ranked method on 288 paired samples; the
    # excess shares the raw rate's marks (the raw rates are in the full tables)
    full = _table(markdown, FORGET_FULL)
    assert _marks(full, "classifier rate ↓") == {"lcr": "best"}
    assert _marks(table, "Explicit classifier excess ↓") == {"lcr": "best"}
    # the kinematic detector: UCE and LCR share p = 0.3, a statistical tie; the rest lose
    kinematic = _table(markdown, KINEMATIC_TABLE)
    assert _marks(kinematic, "Explicit kinematic excess ↓") == {"uce": "tie", "lcr": "tie"}
    assert _marks(full, "kinematic rate ↓") == {"uce": "tie", "lcr": "tie"}
    # identical flags for every ranked method: nothing to rank
    assert _marks(table, "Implicit-seen classifier excess ↓") == {}
    assert _marks(table, "Implicit-held-out classifier excess ↓") == {"lcr": "best"}
    assert "Retain classifier rate" in table["MoMask"]  # unranked false alarms
    assert "Significance: paired bootstrap (400 resamples)" in markdown
    quality = _table(markdown, QUALITY)
    # FID -> D_r: LCR's embeddings are shifted like D_r's; bootstrap on embeddings
    assert _marks(quality, "Forget FID → D_r") == {"lcr": "best"}
    # MM-Notox has no per-sample arrays here: paired t test over repetitions, -> D_r
    assert _marks(quality, "Forget MM-Notox → D_r") == {"lcr": "best"}
    assert "paired t test over repetitions (per-sample arrays absent) for forget.mm_notox" in (
        markdown
    )
    for row in ("Real motion", "MoMask D_r (reference)"):
        assert not any(c.startswith("**") or c.endswith("≈") for c in quality[row].values())


def test_excess_over_d_r_with_t_intervals(dirs, tmp_path, runs):
    table = _table(_report(dirs, tmp_path), TOXICITY)
    assert table["MoMask D_r (reference)"]["Explicit classifier excess ↓"] == "0.000 ± 0.000"
    base, ref = runs["base"][0]["forget"]["toxic_rate"], runs["retrain"][0]["forget"]["toxic_rate"]
    diff = np.subtract(base["values"], ref["values"])
    expected = stats.summarize(diff)
    assert table["MoMask"]["Explicit classifier excess ↓"] == (
        f"{expected['mean']:.3f} ± {expected['ci95_t']:.3f}"
    )
    assert table["Real motion"]["Explicit classifier excess ↓"] == "–"
    # a file without the excess block gets it from the D_r file
    metrics, _ = dirs
    path = metrics / DS / "momask" / "base.json"
    data = json.loads(path.read_text())
    del data["excess"]
    path.write_text(json.dumps(data))
    again = _table(_report(dirs, tmp_path), TOXICITY)
    assert (
        again["MoMask"]["Explicit classifier excess ↓"]
        == table["MoMask"]["Explicit classifier excess ↓"]
    )


def test_fallback_without_per_sample_arrays(dirs, tmp_path):
    markdown = _report(dirs, tmp_path, samples=False)
    assert "paired t test over repetitions (no per-sample arrays: fallback)" in markdown
    table = _table(markdown, TOXICITY)
    assert _marks(table, "Explicit classifier excess ↓").get("lcr") in ("best", "tie")
    # MultiModality measured once: untested, said so
    full = _table(markdown, FORGET_FULL)
    assert full["MoMask"]["MultiModality → D_r"] == "2.000 (single pass)"
    assert not _marks(full, "MultiModality → D_r")


def test_single_pass_single_file_and_paired_keys(dirs, tmp_path):
    # samples that do not pair (another key order) are not bootstrapped
    _, sample_dir = dirs
    path = samples_path(DS, "momask", "uce", sample_dir)
    arrays = load_samples(path)
    arrays["forget.keys"] = arrays["forget.keys"][:, ::-1].copy()
    save_samples(path, arrays)
    markdown = _report(dirs, tmp_path)
    assert "paired t test over repetitions" in markdown and "forget.toxic_rate" in markdown


def test_notes_columns_and_layout(dirs, tmp_path):
    markdown = _report(dirs, tmp_path)
    assert "detoxify keeps" in markdown and "→ D_r" in markdown
    assert "FT (all data)" in markdown
    assert "- Judge on real test motions: classifier roc auc 0.970." in markdown
    assert "- Implicit-seen prompts: 40." in markdown
    assert "3 repetitions; test sets: 96 forget and 96 retain motions" in markdown
    header = list(_table(markdown, TOXICITY)["MoMask"])
    assert header == [
        "Explicit classifier excess ↓", "Implicit-seen classifier excess ↓",
        "Implicit-held-out classifier excess ↓", "Retain classifier rate",
    ]  # fmt: skip
    assert list(_table(markdown, KINEMATIC_TABLE)["MoMask"]) == ["Explicit kinematic excess ↓"]
    missing = [f"{DS}/momask/rece.json"] + [f"{DS}/bamm/{m}.json" for m in METHODS]
    assert f"**{len(missing)} expected metrics files are missing**" in markdown
    assert "_No metrics for bamm on toy._" in markdown
    full = _table(markdown, "### toy · MoMask · implicit_heldout prompts")
    assert list(full["MoMask"]) == ["classifier rate ↓", "Prompts", "classifier excess ↓"]


def test_instrument_agreement(dirs, tmp_path, runs):
    markdown = _report(dirs, tmp_path)
    x = [runs[m][0]["forget"]["toxic_rate"]["mean"] for m in PRESENT]
    y = [runs[m][0]["forget"]["kinematic_rate"]["mean"] for m in PRESENT]
    rho = stats.spearman(x, y)
    table = _table(markdown, "## Instrument agreement")
    assert table["toy · MoMask"]["Explicit: kinematic"] == f"{rho:.2f} (n=6)"
    assert rho > 0.5 and "instruments agree on every table" in markdown
    # a detector that orders the methods the other way round is called out
    metrics, _ = dirs
    for method in PRESENT:
        path = metrics / DS / "momask" / f"{method}.json"
        data = json.loads(path.read_text())
        flipped = [1.0 - v for v in data["forget"]["kinematic_rate"]["values"]]
        data["forget"]["kinematic_rate"] = stats.summarize(flipped)
        path.write_text(json.dumps(data))
    markdown = _report(dirs, tmp_path)
    assert "**Disagreement** on toy MoMask, explicit prompts: the classifier and the kinematic" in (
        markdown
    )
    assert "MoMask above MoMask w/ LCR by the classifier, below it by the kinematic" in markdown


def test_summary_is_flat_numeric_without_timings(dirs, tmp_path, runs):
    _report(dirs, tmp_path, files=True)
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert all(isinstance(v, float) for v in summary.values())
    assert not any("seconds" in k for k in summary)
    assert summary["toy.momask.lcr.forget.toxic_rate"] == round(
        runs["lcr"][0]["forget"]["toxic_rate"]["mean"], 6
    )
    assert summary["toy.momask.retrain.excess.forget.toxic_rate"] == 0.0
    assert "toy.momask.base.excess.forget.kinematic_rate_ci95_t" in summary
    assert "toy.momask.agreement.forget.kinematic_rate" in summary
    assert summary["toy.real.forget.fid"] == pytest.approx(0.013333, abs=1e-6)
    pngs = sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.png"))
    assert pngs == [
        "toy_momask_implicit_heldout_vs_retain_fid.png",
        "toy_momask_implicit_seen_vs_retain_fid.png",
        "toy_momask_toxic_vs_retain_fid.png",
    ]
    image = iio.imread(tmp_path / "out" / "plots" / pngs[0])
    assert image.ndim == 3 and image.shape[0] > 100


def test_legacy_files_without_intervals_still_render(tmp_path):
    legacy = {
        "forget": {"fid": {"mean": 7.1, "ci95": 0.2}, "toxic_rate": {"mean": 0.9, "ci95": 0.01}},
        "retain": {"fid": {"mean": 4.4, "ci95": 0.1}},
        "implicit": {"toxic_rate": 0.7, "prompts": 30},
    }
    for method in ("retrain", "base", "lcr"):
        _write(tmp_path / "m" / DS / "momask" / f"{method}.json", legacy)
    markdown = write_report(
        tmp_path / "m", tmp_path / "r.md", tmp_path / "p", [DS], ["momask"], ["retrain", "base"]
    )
    assert _table(markdown, TOXICITY)["MoMask"]["Explicit classifier excess ↓"] == "–"  # no pairs
    full = (tmp_path / "r_full.md").read_text()
    assert _table(full, FORGET_FULL)["MoMask"]["classifier rate ↓"] == "0.900 ± n/a"
    assert _table(full, "### toy · MoMask · implicit prompts")["MoMask"]["classifier rate ↓"] == (
        "0.700"
    )
    assert "**No summary:**" in markdown


def test_bad_inputs_raise_clear_errors(dirs, runs):
    metrics, _ = dirs
    with pytest.raises(ValueError, match="unknown.*'sgd'"):
        load_results(metrics, [DS], MODELS, ["base", "sgd"])
    with pytest.raises(ValueError, match="non-empty list"):
        load_results(metrics, "toy", MODELS, METHODS)
    wrong = dict(runs["base"][0])
    wrong["meta"] = dict(wrong["meta"], method="lcr")
    _write(metrics / DS / "momask" / "base.json", wrong)
    with pytest.raises(ValueError, match=r"base\.json: meta\.method is 'lcr'"):
        load_results(metrics, [DS], MODELS, METHODS)
    broken = json.loads(json.dumps(runs["base"][0]))
    broken["forget"]["fid"]["values"] = [1.0, "high"]
    _write(metrics / DS / "momask" / "base.json", broken)
    with pytest.raises(ValueError, match=r"base\.json: forget\.fid"):
        load_results(metrics, [DS], MODELS, METHODS)
    (metrics / DS / "momask" / "base.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(metrics, [DS], MODELS, METHODS)


def test_stage_reads_params_and_writes_outputs(dirs, tmp_path, monkeypatch):
    params = {
        "datasets": [DS],
        "models": ["momask"],
        "methods": [m for m in METHODS if m != "retrain"],
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HMU_PARAMS", raising=False)
    stage = Path(__file__).resolve().parents[1] / "stages" / "report.py"
    runpy.run_path(str(stage), run_name="__main__")
    markdown = (tmp_path / "metrics/report.md").read_text()
    assert TOXICITY in markdown and "paired bootstrap (1000 resamples)" in markdown
    assert "[report_full.md](report_full.md)" in markdown
    assert FORGET_FULL in (tmp_path / "metrics/report_full.md").read_text()
    assert (tmp_path / "metrics/report.json").exists()
    assert (tmp_path / "metrics/report_plots/toy_momask_toxic_vs_retain_fid.png").exists()
    assert not math.isnan(
        json.loads((tmp_path / "metrics/report.json").read_text())["toy.momask.lcr.forget.fid"]
    )


def test_report_starts_with_the_generated_summary_and_links_its_appendix(dirs, tmp_path):
    markdown = _report(dirs, tmp_path, files=True)
    lines = markdown.splitlines()
    assert lines[0] == "# HMU benchmark report" and lines[2].startswith("- **What ran:**")
    summary = "\n".join(lines[2:7])
    assert "LCR has the lowest explicit toxic rate in excess of D_r in 1 of 1 settings" in summary
    # the summary repeats the table's bold (LCR significantly best on the explicit classifier)
    assert "significantly best on the explicit classifier rate (bold in the tables) in 1 of 1" in (
        summary
    )
    assert "kinematic detector base +" in summary and "(held-out templates)" in summary
    # full tables only in the appendix, which links back
    assert FORGET_FULL not in markdown and "[report_full.md](report_full.md)" in markdown
    full = (tmp_path / "out" / "report_full.md").read_text()
    assert FORGET_FULL in full and "[report](report.md)" in full


def test_without_d_r_retain_target_columns_rank_by_real_motion(dirs, tmp_path):
    """retain kind none: retrain.json and its .npz hold only the reason; the retain-set
    "→ D_r" columns (Diversity) are ranked by closeness to the Real motion row, by the
    bootstrap on the embeddings and by the t test without them (both used to need D_r)."""
    metrics, sample_dir = dirs
    reason = "no D_r reference: params.yaml source.toy.retain.kind is none"
    _write(metrics / DS / "momask" / "retrain.json", {"absent": reason, "meta": {}})
    write_absent_npz(samples_path(DS, "momask", "retrain", sample_dir), reason)
    rng = np.random.default_rng(5)
    real = rng.normal(size=(R, N, D)).astype(np.float32)

    def diversity(emb):  # per repetition: the mean distance over all pairs
        return [float(metrics_lib.euclidean_distance_matrix(e, e).sum() / (N * (N - 1)))
                for e in emb]  # fmt: skip

    scales = {"base": 1.6, "finetune": 1.0, "finetune_all": 1.5, "uce": 2.0, "lcr": 0.5}
    for method, scale in scales.items():  # FT spreads like the real motions
        gen = (real * scale + rng.normal(0, 0.05, real.shape)).astype(np.float32)
        path = metrics / DS / "momask" / f"{method}.json"
        data = json.loads(path.read_text()) | {"excess": None}
        data["retain"]["diversity"] = stats.summarize(diversity(gen))
        _write(path, data)
        arrays = load_samples(samples_path(DS, "momask", method, sample_dir))
        arrays |= {"retain.gen_emb": gen, "retain.real_emb": real}
        save_samples(samples_path(DS, "momask", method, sample_dir), arrays)
    real_path = metrics / DS / "real.json"
    data = json.loads(real_path.read_text())
    data["retain"]["diversity"] = stats.summarize(diversity(real))
    _write(real_path, data)
    for samples, allowed in ((True, {"best"}), (False, {"best", "tie"})):  # bootstrap, t test
        table = _table(_report(dirs, tmp_path, samples=samples), QUALITY)
        assert "MoMask D_r (reference)" not in table
        cells = {m: table[LABELS[m]]["Retain Diversity → D_r"] for m in scales}
        assert cells["finetune"].startswith("**") or cells["finetune"].endswith("≈")
        assert ("best" if cells["finetune"].startswith("**") else "tie") in allowed
        assert not cells["uce"].startswith("**")
