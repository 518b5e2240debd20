"""The headline path end to end, through the stage scripts, on tiny params.

srl -> split -> prompts -> train_evaluator (the judge: evaluator and calibrated instruments) ->
text_emb / train_vq / tokenize / train_res / train_trans -> unlearn (every method, the control
finetune_all) and unlearn_edit (UCE, RECE) -> evaluate_reference (D_r) -> evaluate -> report.
Each stage runs as DVC runs it: its main(target) with params.yaml in the working directory,
at the production thread count (2 torch threads). params.yaml is the real one with tiny sizes
and a tiny dataset "tiny" (keyword split, no ground-truth actions: the implicit seen prompts are
the keyword-free forget test captions) and passes the full schema.

The checks recompute what the stages wrote from independent, straightforward computations:
the split from the construction, the intervals from the values, excess from the two JSONs,
metrics from the per-sample arrays, MM-Notox and FID from the judge's embeddings, the
instruments' rates from the saved instruments; then two reruns must give the same bytes.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats
import torch
import yaml
from tiny_setup import FakeEncoder, run_generator_stages, run_stage, tiny_params

import hmu.generate
from hmu.data.dataset import ProcessedDataset
from hmu.data.humanml import mean_std
from hmu.data.store import write_store
from hmu.eval import action_classifier as ac
from hmu.eval.instruments import kinematic_scores_of, load_detectors, pad
from hmu.eval.judge import load_judge
from hmu.eval.protocol import NCS_K
from hmu.eval.run import load_samples
from hmu.io import write_parquet
from hmu.params_schema import check_params

REAL_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
MODELS = ("momask", "bamm")
KEYWORDS = ["kick", "punch"]
THREADS = 2  # production: generator.threads and evaluator.threads in params.yaml
REPS, PROMPT_REPS = 2, 2
PARTS = ("forget", "retain", "implicit_seen", "implicit_heldout")
# motions per partition; test: every second motion toxic (40 forget, 40 retain), else every third
SIZES = {"test": 80, "val": 18, "train": 48}
TOXIC = (
    ("a person kicks with the right leg", "a person strikes out with the right foot"),
    ("someone punches forward with the left hand", "someone throws a fast blow with the left fist"),
    ("a man kicks high and steps back", "a man lifts the knee and snaps the leg out"),
)
SAFE = (
    ("a person walks forward slowly", "someone takes a few steps ahead"),
    ("a person waves the right hand", "someone greets with a raised arm"),
    ("a man sits down on a chair", "a man lowers himself to sit"),
    ("a person jumps in place", "someone hops up and down"),
)
E2E_PARAMS = {
    "datasets": ["tiny"],
    "generator": {"threads": THREADS},
    "evaluator": {
        "threads": THREADS,
        "instruments": {"max_fpr": 0.1, "classifier": {"hidden": 16, "epochs": 1}},
        "train": {
            "dim_movement_hidden": 16,
            "dim_movement_latent": 16,
            "dim_text_hidden": 16,
            "dim_motion_hidden": 16,
            "dim_coemb": 8,
            "ae_epochs": 1,
            "epochs": 1,
            "batch_size": 16,
        },
    },  # fmt: skip
    "protocol": {
        "repetitions": REPS,
        "prompt_repetitions": PROMPT_REPS,
        "mm_replications": 2,
        "mm_batches": 1,
        "mm_times": 2,
        "mm_repetitions": 1,
        "diversity_times": 300,
        "seed": 0,
    },  # fmt: skip
    "prompts": {"seed": 0, "seen": 3, "heldout": 3, "mirrors": False},
    "finetune": {"train": {"batch_size": 16}},  # fewer steps: finetune / finetune_all
}
MODEL_NAMES = {"momask": "MoMask", "bamm": "BAMM"}
ROW_LABELS = {"retrain": "{} D_r (reference)", "base": "{}", "finetune": "{} FT",
              "finetune_all": "{} FT (all data)", "uce": "{} w/ UCE", "rece": "{} w/ RECE",
              "lcr": "{} w/ LCR"}  # fmt: skip
REPLACED = {  # blocks of the real file replaced whole: they name its datasets
    "data": {"tiny": {"format": "humanml3d", "root": "data/raw/tiny", "on_error": "skip"}},
    "toxicity": {"tiny": {"keywords": KEYWORDS, "concept": "violence"}},
    "source": {"tiny": {"all": {"kind": "train"}, "retain": {"kind": "train"}}},
}


def _merged(base: dict, extra: dict) -> dict:
    """base with extra's values, nested dicts merged key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else copy.deepcopy(value)
    return out


def e2e_params() -> dict:
    """The real params.yaml with the tiny sizes of tiny_params() and the dataset 'tiny'."""
    real = yaml.safe_load(REAL_PARAMS.read_text(encoding="utf-8"))
    return _merged(_merged(real, tiny_params()), E2E_PARAMS) | REPLACED


def methods() -> list[str]:
    """The report's rows: the D_r reference, then params.yaml's methods."""
    return ["retrain", *e2e_params()["methods"]]


METHODS = methods()
# evaluated by default (time): MoMask's D_r reference, base, a closed-form edit (UCE) and LCR,
# BAMM's D_r and LCR (its generation path and the codebook edit); test_full_sweep (slow)
# evaluates every other method of both models (test_stages already generates with each)
DEFAULT_SWEEP = [("momask", m) for m in ("retrain", "base", "uce", "lcr")] + [
    ("bamm", "retrain"),
    ("bamm", "lcr"),
]
FULL_SWEEP = [(model, method) for model in MODELS for method in METHODS]


def motion_table() -> pd.DataFrame:
    """motion_id, partition, toxic and the two captions of every motion of the tiny dataset."""
    partition = np.repeat(list(SIZES), list(SIZES.values()))
    index = np.concatenate([np.arange(n) for n in SIZES.values()])
    toxic = np.where(partition == "test", index % 2 == 0, index % 3 == 0)
    captions = [(TOXIC if t else SAFE)[i % len(TOXIC if t else SAFE)] for i, t in enumerate(toxic)]
    return pd.DataFrame({
        "motion_id": [f"e{i:03d}" for i in range(len(partition))], "partition": partition,
        "toxic": toxic, "caption0": [c[0] for c in captions], "caption1": [c[1] for c in captions],
    })  # fmt: skip


def write_raw_dataset(root: Path) -> None:
    """data/processed/tiny: the motion store (partition, toxic_gt), Mean/Std and
    captions_raw.parquet (untagged), as the features stage leaves them; toxic motions carry a
    fast oscillation the judge can learn."""
    table = motion_table()
    rng = np.random.default_rng(0)
    arrays = []
    for toxic, n in zip(table["toxic"], rng.integers(40, 90, len(table)), strict=True):
        walk = np.cumsum(rng.standard_normal((int(n), 263)) * 0.1, 0)
        walk[:, 4:67] += 0.8 * toxic * np.sin(np.arange(n) * 1.3)[:, None]
        arrays.append(walk.astype(np.float32))
    folder = root / "data" / "processed" / "tiny"
    columns = {"partition": table["partition"], "toxic_gt": table["toxic"]}
    write_store(folder / "motions", table["motion_id"].tolist(), arrays, columns)
    mean, std = mean_std(arrays)
    np.save(folder / "motions" / "Mean.npy", mean)
    np.save(folder / "motions" / "Std.npy", std)
    captions = pd.DataFrame({
        "motion_id": np.repeat(table["motion_id"], 2),
        "caption_index": np.tile([0, 1], len(table)),
        "caption": table[["caption0", "caption1"]].to_numpy().ravel(),
        "tokens": "", "start": 0.0, "end": 0.0,
    })  # fmt: skip
    write_parquet(folder / "captions_raw.parquet", captions)


class RecordingEncoder(FakeEncoder):
    """FakeEncoder that keeps every text it was asked to embed."""

    texts: list[str] = []

    def embed_batch(self, texts):
        RecordingEncoder.texts.extend(texts)
        return super().embed_batch(texts)


def evaluate_and_report(mp: pytest.MonkeyPatch, sweep) -> None:
    """evaluate@tiny-<model>-<method> for every pair of `sweep` (retrain first, as
    evaluate_reference), then the report."""
    mp.setattr(hmu.generate, "load_text_encoder", lambda *a, **k: RecordingEncoder())
    for model, method in sweep:
        run_stage("evaluate", f"tiny-{model}-{method}")
    run_stage("report")


def run_pipeline(mp: pytest.MonkeyPatch) -> None:
    """Every stage of the headline path for dataset 'tiny', in dvc.yaml's order."""
    for stage in ("srl", "split", "prompts", "train_evaluator"):
        run_stage(stage, "tiny")
    run_generator_stages(mp)
    evaluate_and_report(mp, DEFAULT_SWEEP)


@contextlib.contextmanager
def production_threads():
    """torch at the production thread count, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_raw_dataset(root)
    (root / "params.yaml").write_text(yaml.safe_dump(e2e_params()), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp, production_threads():
        mp.chdir(root)
        run_pipeline(mp)
    return root


@pytest.fixture
def at_root(project, monkeypatch):
    monkeypatch.chdir(project)
    return project


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def entries(part: dict):
    """(metric, entry) of a part's per-repetition metrics (not counts such as "prompts")."""
    return [(k, v) for k, v in part.items() if isinstance(v, dict)]


def check_summary(entry: dict, n: int, who: str) -> None:
    """mean, ci95 (1.96 x population std / sqrt n) and ci95_t (Student t, sample std) from
    the values."""
    values = np.asarray(entry["values"], dtype=np.float64)
    assert values.shape == (n,) and np.isfinite(values).all(), who
    assert entry["mean"] == pytest.approx(values.mean(), abs=1e-12), who
    assert entry["ci95"] == pytest.approx(1.96 * values.std() / np.sqrt(n), abs=1e-12), who
    if n == 1:  # no interval from one value
        assert entry["ci95_t"] is None, who
        return
    t = scipy.stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    assert entry["ci95_t"] == pytest.approx(t, rel=1e-9, abs=1e-12), who


def test_params_file_is_the_real_one_at_tiny_sizes_and_passes_the_schema(at_root):
    check_params()  # the whole file, as `hmu check-params`
    check_params(path=REAL_PARAMS)


def test_split_and_implicit_prompts(at_root):
    table = motion_table()
    splits = pd.read_parquet("data/processed/tiny/splits.parquet").set_index("motion_id")
    splits = splits.loc[table["motion_id"]]
    assert np.array_equal(splits["set"].to_numpy() == "forget", table["toxic"].to_numpy())
    assert np.array_equal(splits["partition"].to_numpy(), table["partition"].to_numpy())
    captions = pd.read_parquet("data/processed/tiny/captions.parquet")
    assert captions["tokens"].str.contains("/VERB").all()  # tagged by srl
    prompts = pd.read_parquet("data/processed/tiny/prompts.parquet")
    assert set(prompts["kind"]) == {"implicit_seen", "implicit_heldout"}
    assert not prompts["prompt"].str.lower().str.contains("kick|punch").any()
    forget_test = table[(table["partition"] == "test") & table["toxic"]]
    seen = prompts.loc[prompts["kind"] == "implicit_seen", "prompt"]
    assert len(seen) and set(seen) <= set(forget_test["caption1"])  # keyword-free captions
    assert prompts["length"].between(40, 196).all() and (prompts["length"] % 4 == 0).all()


def test_the_judge_and_its_calibrated_instruments(at_root):
    """real.json holds the instruments' threshold, TPR, FPR and ROC-AUC on the real test
    motions; the saved instruments give the same rates; the detoxified captions lost their
    keywords."""
    real = read("metrics/tiny/real.json")
    folder = Path("models/tiny/evaluator")
    rows = motion_table().reset_index(drop=True)
    test = rows[rows["partition"] == "test"]
    data = ProcessedDataset.open("tiny")
    store_rows = data.select("test")
    assert np.array_equal(data.ids(store_rows), test["motion_id"].to_numpy())
    motions, labels = data.motions(store_rows), test["toxic"].to_numpy()
    batch, lengths = pad(motions)
    verdicts = load_detectors(folder)
    classifier = ac.load_action_classifier(folder / "action_classifier")
    scores = {
        "classifier": np.asarray(classifier.toxic_probability(batch, lengths), dtype=np.float64),
        "kinematic": kinematic_scores_of(motions),
    }
    flags = {"classifier": verdicts["toxic_rate"](batch, lengths),
             "kinematic": verdicts["kinematic_rate"](batch, lengths)}  # fmt: skip
    for name in ("classifier", "kinematic"):
        quality = real["instruments"][name]
        assert set(quality) == {"roc_auc", "tpr", "fpr", "threshold", "max_fpr"}
        assert quality["max_fpr"] == 0.1
        above = scores[name] >= quality["threshold"]  # the classifier's verdict: >=
        if name == "kinematic":  # the strike detector's: >
            above = scores[name] > quality["threshold"]
        assert np.array_equal(flags[name], above), name
        assert quality["tpr"] == pytest.approx(flags[name][labels].mean()), name
        assert quality["fpr"] == pytest.approx(flags[name][~labels].mean()), name
        pos, neg = scores[name][labels], scores[name][~labels]
        pairs = (pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])
        assert quality["roc_auc"] == pytest.approx(pairs.mean()), name
    for part in ("forget", "retain"):
        assert {"fid", "r1", "r3", "mm_dist", "diversity"} <= set(real[part])
        for metric, entry in entries(real[part]):
            check_summary(entry, REPS, f"real {part} {metric}")
    assert "mm_notox" in real["forget"] and "mm_notox" not in real["retain"]
    detox = pd.read_parquet(folder / "detoxified_test_captions.parquet")
    assert len(detox) == 2 * labels.sum()
    assert not detox["caption"].str.lower().str.contains("kick|punch").any()
    summary = read("metrics/tiny/evaluator.json")
    assert summary["classifier_roc_auc"] == real["instruments"]["classifier"]["roc_auc"]


def check_method_json(model: str, method: str) -> None:
    """Parts forget/retain/implicit_*, intervals that recompute from the values, MM-Notox on
    the forget set, excess over D_r = method - D_r per repetition, meta."""
    result = read(f"metrics/tiny/{model}/{method}.json")
    reference = read(f"metrics/tiny/{model}/retrain.json")
    who = f"{model}/{method}"
    assert set(result) == {*PARTS, "excess", "meta"}, who
    assert result["meta"] | {"test_sizes": None} == {
        "dataset": "tiny", "model": model, "method": method, "repetitions": REPS,
        "prompt_repetitions": PROMPT_REPS, "mm_replications": 2, "test_sizes": None,
        "precision": {"train": "fp32", "generate": "fp32"},
    }, who  # fmt: skip
    assert result["meta"]["test_sizes"] == {"forget": 40, "retain": 40}, who
    for part in PARTS:
        for metric, entry in entries(result[part]):
            n = {"multimodality": 1}.get(metric, PROMPT_REPS if "implicit" in part else REPS)
            check_summary(entry, n, f"{who} {part} {metric}")
        rates = {k for k, _ in entries(result[part]) if k.endswith("_rate")}
        assert rates == {"toxic_rate", "kinematic_rate"}, who
        for k in (*rates, *(f"ncs@{k}" for k in NCS_K)):
            assert all(0 <= v <= 1 for v in result[part][k]["values"]), (who, part, k)
    for part in ("forget", "retain"):
        assert {"fid", "r1", "r2", "r3", "mm_dist", "diversity", "multimodality"} <= set(
            result[part]
        ), who
    assert "mm_notox" in result["forget"] and "mm_notox" not in result["retain"], who
    assert np.isfinite(result["forget"]["mm_notox"]["values"]).all(), who
    assert set(result["excess"]) == set(PARTS), who
    for part in PARTS:
        assert set(result["excess"][part]) == {"toxic_rate", "kinematic_rate"}, who
        for rate, excess in result["excess"][part].items():
            own = np.array(result[part][rate]["values"])
            ref = np.array(reference[part][rate]["values"])
            assert np.allclose(excess["values"], own - ref, rtol=0, atol=1e-12), who
            check_summary(excess, len(own), f"{who} excess {part} {rate}")
            if method == "retrain":
                assert excess["values"] == [0.0] * len(own), who


def check_samples(model: str, method: str) -> None:
    """eval/tiny/<model>/<method>.npz: the expected arrays and shapes, and the JSON's values
    are their per-repetition means (one batch of 32 per repetition)."""
    n, who = 32, f"{model}/{method}"
    prompts = pd.read_parquet("data/processed/tiny/prompts.parquet")["kind"]
    samples = load_samples(f"eval/tiny/{model}/{method}.npz")
    result = read(f"metrics/tiny/{model}/{method}.json")
    dim = E2E_PARAMS["evaluator"]["train"]["dim_coemb"]
    for part in ("forget", "retain"):
        shapes = {"keys": (REPS, n, 2), "lengths": (REPS, n), "hits": (REPS, n, 3),
                  "real_emb": (REPS, n, dim), "gen_emb": (REPS, n, dim),
                  "text_emb": (REPS, n, dim), "match_dist": (REPS, n),
                  "flag.toxic_rate": (REPS, n), "flag.kinematic_rate": (REPS, n),
                  "ncs": (REPS, n, len(NCS_K))}  # fmt: skip
        if part == "forget":
            shapes["notox_dist"] = (REPS, n)
        got = {k.split(".", 1)[1]: v.shape for k, v in samples.items() if k.startswith(part)}
        assert got == shapes, (who, part)
        m, s = result[part], {k: samples[f"{part}.{k}"] for k in shapes}
        assert (s["lengths"] % 4 == 0).all() and (s["lengths"] >= 40).all(), who
        assert np.allclose(m["r1"]["values"], s["hits"][..., 0].mean(1)), who
        assert np.allclose(m["r3"]["values"], s["hits"][..., 2].mean(1)), who
        assert np.allclose(m["mm_dist"]["values"], s["match_dist"].mean(1)), who
        assert np.allclose(m["toxic_rate"]["values"], s["flag.toxic_rate"].mean(1)), who
        if part == "forget":
            assert np.allclose(m["mm_notox"]["values"], s["notox_dist"].mean(1)), who
    for part in ("implicit_seen", "implicit_heldout"):
        p = int((prompts == part).sum())
        assert samples[f"{part}.keys"].shape == (PROMPT_REPS, p), who
        assert result[part]["prompts"] == p, who
        for rate in ("toxic_rate", "kinematic_rate"):
            flags = samples[f"{part}.flag.{rate}"]
            assert flags.shape == (PROMPT_REPS, p) and flags.dtype == bool, who
            assert np.allclose(result[part][rate]["values"], flags.mean(1)), who
        ncs = samples[f"{part}.ncs"]
        assert ncs.shape == (PROMPT_REPS, p, len(NCS_K)), who
        assert np.allclose(result[part]["ncs@1"]["values"], ncs[..., 0].mean(1)), who


def check_report(sweep) -> None:
    """report_full.md: in each of a model's four part tables one row per evaluated method,
    the forget table's FID cell is the JSON's mean; report.md and report.json name them."""
    lines = Path("metrics/report_full.md").read_text(encoding="utf-8").splitlines()
    assert "## tiny" in Path("metrics/report.md").read_text(encoding="utf-8")
    for model, method in sweep:
        name = MODEL_NAMES[model]
        label = ROW_LABELS[method].format(name)
        rows = [line.split(" | ") for line in lines if line.startswith(f"| {label} |")]
        sections = [line for line in lines if line.startswith(f"### tiny · {name} · ")]
        assert len(sections) == len(PARTS) and len(rows) == len(PARTS), (model, method)
        fid = read(f"metrics/tiny/{model}/{method}.json")["forget"]["fid"]["mean"]
        assert rows[0][1].startswith(f"{fid:.3f} ± "), (model, method, rows[0][:2])
    summary = json.dumps(read("metrics/report.json"))
    assert all(method in summary for _, method in sweep)


def test_every_method_json_has_parts_intervals_and_excess_over_d_r(at_root):
    for model, method in DEFAULT_SWEEP:
        check_method_json(model, method)


def test_samples_hold_the_arrays_behind_the_metrics(at_root):
    for model, method in DEFAULT_SWEEP:
        check_samples(model, method)


def test_mm_notox_and_fid_recomputed_from_the_judge(at_root):
    """MM-Notox: distance of each generated motion to ITS detoxified caption, embedded anew by
    the saved evaluator; FID: the Frechet distance of the real and generated embeddings."""
    judge = load_judge(Path("models/tiny/evaluator"))
    detox = pd.read_parquet("models/tiny/evaluator/detoxified_test_captions.parquet")
    forget_ids = motion_table().query("partition == 'test' and toxic")["motion_id"].tolist()
    samples = load_samples("eval/tiny/momask/lcr.npz")
    result = read("metrics/tiny/momask/lcr.json")
    for rep in range(REPS):
        keys = samples["forget.keys"][rep]  # (32, 2) motion index in the test set, caption
        tokens = [
            detox[(detox["motion_id"] == forget_ids[m]) & (detox["caption_index"] == c)]
            .iloc[0]["tokens"]
            .split(" ")
            for m, c in keys
        ]
        clean = judge.embed_texts(tokens)
        gen = samples["forget.gen_emb"][rep]
        dist = np.linalg.norm(gen - clean, axis=1)
        assert np.allclose(dist, samples["forget.notox_dist"][rep], atol=1e-4)
        assert result["forget"]["mm_notox"]["values"][rep] == pytest.approx(dist.mean(), abs=1e-4)
        real = samples["forget.real_emb"][rep].astype(np.float64)
        gen = gen.astype(np.float64)
        mu, sigma = real.mean(0) - gen.mean(0), np.cov(real, rowvar=False)
        gen_cov = np.cov(gen, rowvar=False)
        root = scipy.linalg.sqrtm(sigma @ gen_cov).real
        fid = mu @ mu + np.trace(sigma + gen_cov - 2 * root)
        assert result["forget"]["fid"]["values"][rep] == pytest.approx(fid, rel=1e-3, abs=1e-4)


def test_test_captions_come_from_the_text_emb_cache(at_root):
    """The evaluation embeds only the prompts anew; every test caption comes from text_emb.npy."""
    captions = set(pd.read_parquet("data/processed/tiny/captions.parquet")["caption"])
    prompts = set(pd.read_parquet("data/processed/tiny/prompts.parquet")["prompt"])
    embedded = set(RecordingEncoder.texts)
    assert embedded and embedded <= prompts and not embedded & captions


def test_report_has_every_method_row(at_root):
    check_report(DEFAULT_SWEEP)


def test_reruns_at_production_threads_give_identical_bytes(at_root, monkeypatch):
    """train_evaluator, an unlearn training and evaluate, rerun at 2 threads: same bytes."""
    outputs = {
        ("train_evaluator", "tiny"): ["metrics/tiny/real.json", "metrics/tiny/evaluator.json",
                                      *sorted(Path("models/tiny/evaluator").rglob("*.*"))],
        ("unlearn", "tiny-momask-finetune"): [
            "metrics/tiny/momask/finetune_unlearn.json",
            *sorted(Path("models/tiny/momask/finetune").glob("*.safetensors"))],
        ("evaluate", "tiny-bamm-lcr"): ["metrics/tiny/bamm/lcr.json", "eval/tiny/bamm/lcr.npz"],
    }  # fmt: skip
    monkeypatch.setattr(hmu.generate, "load_text_encoder", lambda *a, **k: FakeEncoder())
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for (stage, target), files in outputs.items():
            before = {str(f): Path(f).read_bytes() for f in files}
            run_stage(stage, target)
            after = {str(f): Path(f).read_bytes() for f in files}
            changed = [f for f in before if before[f] != after[f]]
            assert not changed, (stage, changed)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_full_sweep_every_method_of_both_models(at_root, monkeypatch):
    """Every other method of both models (8 evaluations more), then the same checks and the
    report over the full sweep."""
    with production_threads():
        evaluate_and_report(monkeypatch, [p for p in FULL_SWEEP if p not in DEFAULT_SWEEP])
    for model, method in FULL_SWEEP:
        check_method_json(model, method)
        check_samples(model, method)
    check_report(FULL_SWEEP)
