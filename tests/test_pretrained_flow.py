"""Bring your own checkpoints through DVC (issue 16): `dvc repro` in a temporary copy of the
pipeline (dvc.yaml, params.yaml, hmu/, stages/) with `source.humanml3d.*.kind: pretrained`,
upstream-format checkpoints with random weights (tests/upstream_files.py), a tiny CLIP text
state dict, the released evaluator's files and a tiny dataset folder in the real HumanML3D
layout (the embedded generator writes it, outside the pipeline: it stands for the user's data).

Checked: the import stages ran and no training function did (each import writes import.json,
a training writes train.json), tokenize, every unlearning method, evaluate and the report ran,
and the report has the expected rows. Two flows: D_r imported from the user's files
(`retain.kind: pretrained`, MoMask and BAMM) and no D_r at all (`none`, MoMask only: the
markers, null excess and report notes of `none` do not depend on the model, and the first flow
already runs every BAMM stage). The slow test runs both (45 + 29 stages; measured about 3.5 +
1.7 min on 2 free cores, 317 s of CPU in all; every stage takes a few seconds, mostly Python
and torch start-up); the fast ones check the pieces it relies on. `HMU_FLOW_RECORD=<folder>`
keeps a record of each flow there (`<flow>.md`: the stages in the order they ran, with their
seconds, and `dvc dag` as mermaid: the plain `dvc dag` here is over 10,000 columns wide).

Every stage runs with one intra-op thread (OMP_NUM_THREADS=1; generator.threads and
evaluator.threads 1): the tensors are tiny, and on a shared 2-core machine a second thread
only waits (measured: a fine-tuning step 2.5 s with 1 thread, 15-28 s with 2 while another
process ran).

Why targets and not a bare `dvc repro`: the report and gallery stages list metrics/motionx (the
report also eval/motionx) as a dependency whatever `datasets` says, and features@motionx always
exists, so a HumanML3D-only project runs `dvc repro --glob 'evaluate*@humanml3d-*'` and then
`dvc repro -s report` (with empty metrics/motionx and eval/motionx folders); docs/pretrained.md
says so, and why dvc.yaml cannot follow `datasets` there.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from upstream_files import released_evaluator, tiny_clip_state, upstream_files

from hmu.data.synth import SynthConfig, generate_dataset
from hmu.eval.report import HAND_WRITTEN

ROOT = Path(__file__).resolve().parents[1]
DS = "humanml3d"
FLOW_MODELS = {"pretrained": ["momask", "bamm"], "none": ["momask"]}  # retain kind -> models
METHODS = ["base", "finetune", "finetune_all", "uce", "rece", "lcr"]
PAIR_STAGES = ("train_vq", "train_trans", "train_res")  # import stages under pretrained
WORDS = ["unk", "sos", "eos", "person", "kick", "walk", "forward", "a", "the"]


def tiny_humanml3d(folder: Path) -> None:
    """A small dataset in the real HumanML3D layout (new_joint_vecs, texts, split files,
    Mean/Std), with toxic (kick, punch) and safe motions."""
    config = SynthConfig(motions=200, seed=0, mirror=False, toxic_share=0.3, test_forget=32,
                         test_retain=32, val_share=0.1)  # fmt: skip
    generate_dataset(folder, config.validated())


def pretrained_overrides(
    user: Path, retain: dict | None = None, models: list[str] | None = None
) -> dict:
    """The params a user of issue 16's recipe sets (paths to their files), at tiny sizes:
    both subsets imported unless `retain` says otherwise; MoMask and BAMM unless `models`."""
    torch_clip = user / "clip_text.pt"
    import torch

    torch.save(tiny_clip_state(), torch_clip)
    return {
        "datasets": [DS],
        "models": models or FLOW_MODELS["pretrained"],
        "methods": METHODS,
        "data": {DS: {"format": "humanml3d", "root": str(user / "HumanML3D"), "on_error": "skip"}},
        "generator": {"text_encoder": "clip", "clip_weights": str(torch_clip), "threads": 1},
        "evaluator": {"threads": 1, **released_evaluator(user / "t2m_evaluator", WORDS)},
        "source": {
            DS: {
                "all": upstream_files(user / "momask_all", seed=0),
                "retain": retain or upstream_files(user / "momask_retain", seed=1),
            }
        },
        "protocol": {
            "repetitions": 2,
            "prompt_repetitions": 2,
            "mm_replications": 2,
            "mm_batches": 1,
            "diversity_times": 10,
            "mm_times": 1,
            "mm_repetitions": 1,
            "seed": 0,
        },  # fmt: skip
        "prompts": {"seed": 0, "seen": 4, "heldout": 4, "mirrors": False},
        "generation": {"timesteps": 2, "batch_size": 64},
        "finetune": {"epochs": 1},
        "rece": {"epochs": 1},
        "lcr": {"r": 2, "min_support": 1},
        "precision": {"train": "fp32", "generate": "fp32"},
    }


def merge(base: dict, changes: dict) -> dict:
    """base with changes applied recursively (dicts merge, anything else replaces)."""
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def dvc(cwd: Path, *args: str) -> list[tuple[float, str]]:
    """Run `dvc args` in cwd (one torch thread per stage) -> its output lines (stdout and
    stderr), each with the seconds since the start."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    start = time.perf_counter()
    command = [sys.executable, "-m", "dvc", *args]
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
        lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]
    if proc.returncode:
        tail = "\n".join(line for _, line in lines)[-6000:]
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{tail}")
    return lines


def make_project(tmp: Path, retain: dict | None = None, models: list[str] | None = None) -> Path:
    """A copy of the pipeline in tmp/project whose params point at the user's files in tmp/user."""
    user, project = tmp / "user", tmp / "project"
    tiny_humanml3d(user / "HumanML3D")
    project.mkdir()
    for item in ("dvc.yaml", "params.yaml", *HAND_WRITTEN):
        (project / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / item, project / item)
    for folder in ("hmu", "stages"):
        shutil.copytree(
            ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    params = yaml.safe_load((project / "params.yaml").read_text())
    params = merge(params, pretrained_overrides(user, retain, models))
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(project, "init", "--no-scm", "-q")
    return project


def ran_stages(lines: list[tuple[float, str]]) -> list[tuple[str, float]]:
    """The stages a `dvc repro` ran, in order, each with its seconds (its command and DVC's
    bookkeeping: up to the next stage, the last one up to the last line)."""
    starts = [(t, line.split("'")[1]) for t, line in lines if line.startswith("Running stage")]
    ends = [t for t, _ in starts[1:]] + [lines[-1][0]] * bool(starts)
    return [(stage, end - t) for (t, stage), end in zip(starts, ends, strict=True)]


def repro(project: Path) -> list[tuple[str, float]]:
    """The flow: everything the humanml3d evaluations need, then the report -> ran_stages."""
    stages = ran_stages(dvc(project, "repro", "--glob", f"evaluate*@{DS}-*"))
    for folder in ("metrics", "eval"):  # the report lists both per dataset
        (project / folder / "motionx").mkdir(parents=True, exist_ok=True)
    return stages + ran_stages(dvc(project, "repro", "-s", "report"))


def mermaid_of(project: Path, stages: list[str]) -> list[str]:
    """`dvc dag --mermaid` restricted to `stages` and the edges between them (the whole
    graph also holds the stages the flow does not need: synth, motionx, stats, gallery)."""
    lines = [line.strip() for _, line in dvc(project, "dag", "--mermaid")]
    names = dict(re.findall(r'^(node\d+)\["(.+)"\]$', "\n".join(lines), re.MULTILINE))
    keep = {node for node, name in names.items() if name in stages}
    edges = [f"\t{line}" for line in lines if "-->" in line and set(line.split("-->")) <= keep]
    nodes = [f'\t{node}["{name}"]' for node, name in names.items() if node in keep]
    return ["flowchart TD", *nodes, *edges]


def record(project: Path, flow: str, stages: list[tuple[str, float]]) -> str:
    """The flow's record: its stages in order with their seconds, and their `dvc dag`."""
    total = sum(seconds for _, seconds in stages)
    lines = [f"# retain {flow}: {len(stages)} stages, {total:.0f} s", ""]
    lines += [f"{i:3d}. {stage} ({seconds:.1f} s)" for i, (stage, seconds) in enumerate(stages, 1)]
    collapsed = [line for _, line in dvc(project, "dag", "--collapse-foreach-matrix", "--mermaid")]
    dag = mermaid_of(project, [stage for stage, _ in stages])
    return "\n".join([*lines, "", "## dvc dag --collapse-foreach-matrix --mermaid (the project)",
                      "", "```mermaid", *collapsed, "```", "",
                      "## dvc dag --mermaid, the stages that ran", "", "```mermaid", *dag, "```",
                      ""])  # fmt: skip


@pytest.fixture(scope="module", params=list(FLOW_MODELS))
def flow(request, tmp_path_factory):
    """The project after the flow; D_r imported from the user's files, or left out (none)."""
    name, models = request.param, FLOW_MODELS[request.param]
    retain = {"kind": "none"} if name == "none" else None
    project = make_project(tmp_path_factory.mktemp(f"flow_{name}"), retain, models)
    stages = repro(project)
    text = record(project, name, stages)
    if os.environ.get("HMU_FLOW_RECORD"):
        folder = Path(os.environ["HMU_FLOW_RECORD"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(text)
    print(text.split("## dvc dag")[0])
    return project, [stage for stage, _ in stages], name, models


@pytest.mark.slow
def test_repro_imports_and_trains_nothing(flow):
    project, ran, retain, models = flow
    pair = [s for s in ran if s.split("@")[0] in PAIR_STAGES]
    assert len(pair) == 2 * (2 + len(models)), pair  # vq, res, and a transformer per model
    for stage in ("train_evaluator", "text_emb", "tokenize", "unlearn", "unlearn_control",
                  "unlearn_edit", "evaluate_reference", "evaluate", "report"):  # fmt: skip
        assert any(s.split("@")[0] == stage for s in ran), stage
    assert not any(s.startswith("synth") for s in ran)  # the user's folder, not the generator
    folders = project / "models" / DS
    subsets = ("all", "retain") if retain == "pretrained" else ("all",)
    imported = [folders / f"{p}_{s}" for p in ("vq", "res", *models) for s in subsets]
    for folder in imported:
        record = json.loads((folder / "import.json").read_text())
        assert record["source"] == "pretrained", folder
        assert not (folder / "train.json").exists() and not (folder / "live").exists(), folder
    if retain == "none":  # the D_r pieces are markers, nothing trained or imported
        for piece in ("vq", "res", *models):
            assert [p.name for p in (folders / f"{piece}_retain").iterdir()] == ["absent.json"]
    judge = json.loads((project / "metrics" / DS / "evaluator.json").read_text())
    assert judge["train_pairs"] > 0  # the released judge is loaded, its instruments fitted


@pytest.mark.slow
def test_every_method_and_the_report(flow):
    project, _, retain, models = flow
    metrics = project / "metrics" / DS
    for model in models:
        for method in METHODS:
            assert (project / "models" / DS / model / method / "method.json").exists()
            result = json.loads((metrics / model / f"{method}.json").read_text())
            if retain == "pretrained":
                assert result["excess"], (model, method)
            else:  # explicitly null, with the reason
                assert result["excess"] is None and "kind is none" in result["meta"]["excess"]
        reference = json.loads((metrics / model / "retrain.json").read_text())
        assert ("absent" in reference) == (retain == "none")
        assert (project / "models" / DS / model / "retrain").is_dir()
    report = (project / "metrics" / "report.md").read_text()
    names = {"momask": "MoMask", "bamm": "BAMM"}
    rows = ["Real motion"]
    for name in (names[m] for m in models):
        rows += [f"| {name} |", f"{name} FT", f"{name} FT (all data)", f"{name} w/ UCE",
                 f"{name} w/ RECE", f"{name} w/ LCR"]  # fmt: skip
        rows += [f"{name} D_r (reference)"] * (retain != "none")
    for row in rows:
        assert row in report, row
    assert ("| BAMM |" in report) == ("bamm" in models)
    section = report.split(f"\n## {DS}\n")[1].split("\n## ")[0]  # the dataset's tables
    assert "Missing" not in section
    if retain == "none":
        assert "D_r (reference)" not in report
        assert section.count("No D_r reference: params.yaml source.") == len(models)
        assert "excess" not in section.split("#### humanml3d")[1].split("|---")[0]


def test_overrides_name_every_imported_file(tmp_path):
    """The fast check of the pieces: the params the flow sets are valid and point at files."""
    from hmu.params_schema import validate_params

    tiny_humanml3d(tmp_path / "HumanML3D")
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
                   pretrained_overrides(tmp_path))  # fmt: skip
    validate_params(params)
    block = params["source"][DS]["all"]
    for path in (block["vq"], block["mean"], block["std"], block["res"], block["length"],
                 *block["trans"].values(), params["evaluator"]["checkpoint"]):  # fmt: skip
        assert Path(path).is_file(), path
    for name in ("new_joint_vecs", "texts", "train.txt", "test.txt", "Mean.npy", "Std.npy"):
        assert (tmp_path / "HumanML3D" / name).exists(), name
