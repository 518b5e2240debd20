"""The offline motion gallery: prompts, cells, the page files, the stage, and (slow) the page
in a real headless Chromium."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tiny_setup import (
    FakeEncoder,
    load_stage,
    tiny_generator,
    write_method,
    write_tiny_dataset,
    write_tiny_models,
)

from hmu.data.dataset import ProcessedDataset
from hmu.data.humanml import recover_from_ric
from hmu.data.synth import generate_action
from hmu.viz import gallery as G

torch.set_num_threads(1)
KEYWORDS = ["kick"]

GENERATION = {"cond_scale": 4.0, "res_cond_scale": 5.0, "refine_cond_scale": 3.0,
              "temperature": 1.0, "topk": 0.9, "batch_size": 256}  # fmt: skip


def _tiny_project(root):
    """data/processed/tiny with a keyword caption on every forget motion (caption 0)."""
    write_tiny_dataset(root)
    folder = root / "data" / "processed" / "tiny"
    caps = pd.read_parquet(folder / "captions.parquet")
    forget = pd.read_parquet(folder / "splits.parquet").query("set == 'forget'")["motion_id"]
    kick = caps["motion_id"].isin(set(forget)) & (caps["caption_index"] == 0)
    caps.loc[kick, "caption"] = "a man kicks " + caps.loc[kick, "motion_id"]
    caps.to_parquet(folder / "captions.parquet")
    return ProcessedDataset.open("tiny", folder)


def test_prompts_by_kind_from_the_right_test_sets(tmp_path):
    data = _tiny_project(tmp_path)
    prompts = G.gallery_prompts(data, KEYWORDS, per_kind=2, seed=1)
    assert prompts["kind"].tolist() == ["explicit"] * 2 + ["implicit"] * 2 + ["safe"] * 2
    table, splits = data.store.table, data.splits.set_index("motion_id")
    for prompt, kind, length in prompts.itertuples(index=False):
        motion_id = prompt.split()[-1]  # captions end with their motion id
        assert splits.loc[motion_id, "partition"] == "test"
        assert splits.loc[motion_id, "set"] == ("retain" if kind == "safe" else "forget")
        assert ("kicks" in prompt) == (kind == "explicit")
        frames = int(table.loc[table["motion_id"] == motion_id, "length"].iloc[0])
        assert length == min(max(frames // 4 * 4, 40), 196)
    pd.testing.assert_frame_equal(prompts, G.gallery_prompts(data, KEYWORDS, 2, seed=1))


def test_cells_hold_the_generated_joints_and_verdicts():
    prompts = pd.DataFrame({"prompt": ["a man kicks", "a man walks"], "kind": ["explicit", "safe"],
                            "length": [40, 48]})  # fmt: skip
    seen = {}

    def probability(features, lengths):  # records what the judge gets
        seen["features"], seen["lengths"] = features, lengths
        return np.array([0.9, 0.1])

    cells = G.method_cells(tiny_generator("momask", seed=5), prompts, probability, fps=10)
    features = tiny_generator("momask", seed=5)(["a man kicks", "a man walks"], [40, 48])
    np.testing.assert_array_equal(seen["features"], features)  # same seed, same motions
    assert seen["lengths"].tolist() == [40, 48]
    joints = recover_from_ric(features)  # (2, 48, 22, 3)
    for i, length in enumerate((40, 48)):
        expected = np.rint(joints[i, :length:2] * 100).astype(int).ravel()  # 10 of 20 fps
        assert cells[i]["frames"] == expected.tolist()
        assert cells[i]["row"] == i and -1 <= cells[i]["strike"] <= 1
    assert [c["toxic"] for c in cells] == [0.9, 0.1]
    assert [c["toxic_flag"] for c in cells] == [True, False]  # default threshold 0.5
    again = G.method_cells(tiny_generator("momask", seed=5), prompts, None, fps=10)
    assert [c["frames"] for c in again] == [c["frames"] for c in cells]  # a column = a seed
    assert again[0]["toxic"] is None
    with pytest.raises(ValueError, match="fps 3"):
        G.method_cells(tiny_generator("momask"), prompts, None, fps=3)


def _synthetic_page(folder, steps=(0, 1)):
    """A page of synthetic actions (the real thing without models): 2 grids, 3 rows, 2 methods."""
    rng = np.random.default_rng(0)
    actions = {"explicit": "front_kick", "implicit": "jab", "safe": "walk_forward"}
    motions = {k: generate_action(a, rng).joints for k, a in actions.items()}  # (T, 22, 3) each
    lengths = [len(m) for m in motions.values()]
    texts = [f"someone does {a}" for a in actions.values()]
    prompts = pd.DataFrame({"prompt": texts, "kind": list(actions), "length": lengths})
    cells = [
        {"row": i, "toxic": 0.2 + 0.3 * i, "strike": 0.5 - 0.4 * i,
         "frames": G.encode_joints(m, len(m), 2)}
        for i, m in enumerate(motions.values())
    ]  # fmt: skip
    grids = [G.grid(ds, "momask", prompts, {"retrain": cells[1:], "lcr": cells}) for ds in "ab"]
    return G.write_gallery(folder, G.page_data(grids, fps=10, seed=0))


def test_page_files_are_offline_and_carry_the_data(tmp_path):
    index = _synthetic_page(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*G.ASSETS, G.DATA_FILE])
    for path in tmp_path.iterdir():  # no CDN, no remote asset of any kind
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name
    html = index.read_text()
    assert '<script src="data.js">' in html and '<script src="gallery.js">' in html
    text = (tmp_path / G.DATA_FILE).read_text()
    data = json.loads(text.removeprefix("window.HMU_GALLERY = ").removesuffix(";\n"))
    assert [g["dataset"] for g in data["grids"]] == ["a", "b"]
    labels = [m["label"] for m in data["grids"][0]["methods"]]
    assert labels == ["D_r", "LCR"] and data["kinds"] == list(G.KINDS)


def test_stage_writes_the_gallery(tmp_path, monkeypatch):
    data = _tiny_project(tmp_path)
    pieces = write_tiny_models(tmp_path)
    for method in ("retrain", "base"):
        write_method(tmp_path, pieces, method=method)
    captions = data.captions["caption"].tolist()
    np.save(tmp_path / "data/processed/tiny/text_emb.npy", FakeEncoder().encode(captions))
    params = {"datasets": ["tiny"], "models": ["momask"], "methods": ["base"],
              "gallery": {"per_kind": 1, "seed": 0, "fps": 10},
              "generation": {**GENERATION, "timesteps": 2},
              "generator": {"text_encoder": "minilm", "threads": 1},
              "toxicity": {"tiny": {"keywords": KEYWORDS}}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    stage = load_stage("gallery")
    monkeypatch.setattr(
        stage, "judge_probability", lambda folder: (lambda f, n: np.full(len(f), 0.5), (0.5, 0.0))
    )
    stage.main(tmp_path / "out")
    text = (tmp_path / "out" / G.DATA_FILE).read_text()
    page = json.loads(text.removeprefix("window.HMU_GALLERY = ").removesuffix(";\n"))
    (grid,) = page["grids"]
    assert [p["kind"] for p in grid["prompts"]] == list(G.KINDS)
    columns = [[c["frames"] for c in m["cells"]] for m in grid["methods"]]
    assert columns[0] == columns[1]  # same pieces, same seed: the same motions in both columns


def _chromium(*args, timeout=120):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0"]  # fmt: skip
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True,
                          timeout=timeout, check=True)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs a headless Chromium (Debian: apt-get install chromium)",
)
def test_page_plays_in_headless_chromium(tmp_path):
    index = _synthetic_page(tmp_path / "page")
    url = index.resolve().as_uri()
    run = _chromium("--virtual-time-budget=3000", "--dump-dom", url)
    consoles = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not consoles, consoles  # no console message at all, errors included
    body = re.search(r"<body([^>]*)>", run.stdout).group(1)
    assert 'data-ready="true"' in body and "data-errors" not in body
    assert 'data-cells="10"' in body  # 2 grids x (3 + 2) cells
    frames = [int(f) for f in re.findall(r'<canvas[^>]*data-frame="(\d+)"', run.stdout)]
    assert len(frames) == 10 and min(frames) > 10  # ~30 frames in 3 s of virtual time at 10 fps
    filtered = _chromium("--virtual-time-budget=500", "--dump-dom", url + "#dataset=b&kind=safe")
    assert 'data-cells="2"' in filtered.stdout  # grid b, the safe row, both methods
    shot = tmp_path / "gallery.png"
    _chromium("--virtual-time-budget=1500", "--window-size=1000,1400", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 10_000
