"""The `hmu` command line.

    hmu --version
    hmu methods [--models-root models]
    hmu viz --dataset humanml3d --action front_kick --out kick.gif   (see hmu.viz.anim)
    hmu generate --dataset D --model momask|bamm [--method base] --text "a man walks" \\
        [--text ...] [--prompts prompts.txt] [--length 120] [--seed 0] --out motion.gif|mp4|bvh|npy

    hmu check-params [--params params.yaml]
    hmu seeds [--exp NAME] [--folder PATH] [--no-experiments]   (training-seed replicas)
    hmu variants precision|bamm [--exp NAME] [--folder PATH] [--no-experiments]
                                    (replicas under another precision / BAMM second pass)

    hmu import-official --dataset D --model momask --vq net_best_fid.tar --trans latest.tar \\
        --res latest.tar [--length-estimator finest.tar] --mean meta/mean.npy --std meta/std.npy \\
        [--clip-weights ViT-B-32.pt] [--method official]

`generate` loads models/<D>/<model>/<method>/method.json like the evaluation does, generates one
motion per prompt (with --length frames, else a predicted length) and writes either the joint
positions (.npy, (B, T, 22, 3), plus <out>.json with the prompts and lengths) or one file per
prompt (.gif/.mp4 animation or .bvh; several prompts give <stem>_<i>.<ext>). `methods` lists the
methods the pipeline produced; `viz` renders a dataset motion or a generated batch.
`import-official` turns the released checkpoints into such a method (then
`hmu generate --method official`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from hmu.errors import BAD_INPUT, one_line, read_text_lines
from hmu.io import write_json, write_npy

ANIMATION_SUFFIXES = (".gif", ".mp4")
PER_PROMPT_SUFFIXES = (*ANIMATION_SUFFIXES, ".bvh")
FPS = 20


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts: {path} not found")
    lines = [line.strip() for line in read_text_lines(path, "--prompts")]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts: {path} holds no prompt")
    return prompts


def joints_of(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joint positions (B, T, 22, 3) of raw features (B, T, 263); frames past each valid length
    (4 x length // 4) hold the last valid pose, so every row is a complete motion."""
    from hmu.data.humanml import recover_from_ric

    joints = recover_from_ric(features.astype(np.float32))  # (B, T, 22, 3)
    valid = np.maximum(np.asarray(lengths) // 4 * 4, 1)  # (B,)
    frame = np.minimum(np.arange(features.shape[1])[None, :], valid[:, None] - 1)  # (B, T)
    return np.take_along_axis(joints, frame[:, :, None, None], axis=1)


def _animation_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i:02d}{out.suffix}") for i in range(count)]


def version() -> str:
    """The installed package's version ('unknown' when run from a checkout not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("hmu")
    except PackageNotFoundError:
        return "unknown"


def _write_bvh(joints: np.ndarray, lengths: np.ndarray, out: Path) -> list[Path]:
    from hmu.viz.bvh import write_bvh

    paths = _animation_paths(out, len(joints))
    for motion, length, path in zip(joints, lengths, paths, strict=True):
        write_bvh(path, motion[: max(int(length) // 4 * 4, 1)], fps=FPS)
    return paths


def _render(joints: np.ndarray, lengths: np.ndarray, texts: list[str], out: Path) -> list[Path]:
    try:
        from hmu.viz.anim import render_motion
    except ImportError as err:
        raise RuntimeError(
            f"--out {out}: animations need hmu.viz.anim.render_motion ({err}); write .npy instead"
        ) from err
    paths = _animation_paths(out, len(texts))
    for motion, length, text, path in zip(joints, lengths, texts, paths, strict=True):
        render_motion(motion[: max(int(length) // 4 * 4, 1)], path, fps=FPS, title=text)
    return paths


def generate_command(args: argparse.Namespace) -> list[Path]:
    """Run `hmu generate`; returns the written files."""
    from hmu.allocator import keep_freed_memory
    from hmu.generate import load_generator

    keep_freed_memory()

    out = Path(args.out)
    if out.suffix not in (".npy", *PER_PROMPT_SUFFIXES):
        raise ValueError(f"--out {out}: expected a .npy, .gif, .mp4 or .bvh file")
    texts = list(args.text or []) + (read_prompts(args.prompts) if args.prompts else [])
    if not texts:
        raise ValueError("give at least one --text or a --prompts file")
    generator = load_generator(
        args.dataset, args.model, args.method, models_root=args.models_root, seed=args.seed
    )
    if args.length is None:
        features, lengths = generator.generate_free(texts)
    else:
        lengths = np.full(len(texts), args.length, dtype=np.int64)
        features = generator(texts, lengths)
    joints = joints_of(features, lengths)
    if out.suffix == ".npy":
        write_npy(out, joints.astype(np.float32))
        write_json(
            out.with_suffix(".json"),
            {
                "texts": texts,
                "lengths": [int(n) // 4 * 4 for n in lengths],
                "fps": FPS,
                "dataset": args.dataset,
                "model": args.model,
                "method": args.method,
                "seed": args.seed,
            },
        )
        return [out, out.with_suffix(".json")]
    if out.suffix == ".bvh":
        return _write_bvh(joints, lengths, out)
    return _render(joints, lengths, texts, out)


def import_official_command(args: argparse.Namespace) -> list[Path]:
    """Run `hmu import-official`; returns the written method.json."""
    from hmu.generate import import_official

    method_file = import_official(
        args.dataset,
        args.model,
        vq=args.vq,
        trans=args.trans,
        mean=args.mean,
        std=args.std,
        res=args.res,
        length=args.length_estimator,
        clip_weights=args.clip_weights,
        models_root=args.models_root,
        method=args.method,
    )
    return [method_file]


def check_params_command(args: argparse.Namespace) -> list[Path]:
    """Run `hmu check-params`: validate the whole params file against hmu.params_schema."""
    from hmu.params_schema import check_params

    check_params(path=args.params)
    print(f"{args.params}: ok", file=sys.stderr)
    return []


def methods_command(args: argparse.Namespace) -> list[str]:
    """Run `hmu methods`: one line per dataset and model with the methods found."""
    from hmu.methods import discover_methods

    found = discover_methods(args.models_root)
    if not found:
        raise FileNotFoundError(
            f"no {args.models_root}/<dataset>/<model>/<method>/method.json: run `dvc repro` "
            "(or `hmu import-official`) first"
        )
    return [f"{ds} {model}: {' '.join(methods)}" for ds, models in found.items()
            for model, methods in models.items()]  # fmt: skip


def seeds_command(args: argparse.Namespace) -> list[Path]:
    """Run `hmu seeds`: pool the workspace and its training-seed replicas (hmu.eval.seeds)."""
    from hmu.eval.seeds import experiment_runs, folder_run, write_seeds

    runs = [folder_run(".", "workspace")]
    runs += [folder_run(path) for path in args.folder]
    if not args.no_experiments:
        runs += experiment_runs(".", args.exp)
    for run in runs:
        print(f"{run.name}: train.seed={run.seed}", file=sys.stderr)
    return write_seeds(runs)


def variants_command(args: argparse.Namespace) -> list[Path]:
    """Run `hmu variants <block>`: compare the workspace with its replicas under another
    setting of the block (hmu.eval.variants)."""
    from hmu.eval.seeds import experiment_runs, folder_run
    from hmu.eval.variants import VARIANTS, run_setting, write_variants

    variant = VARIANTS[args.block]
    reference = folder_run(".", "workspace")
    replicas = [folder_run(path) for path in args.folder]
    if not args.no_experiments:
        replicas += experiment_runs(".", args.exp, vary=variant.block)
    setting = run_setting(reference, variant)
    replicas = [run for run in replicas if run_setting(run, variant) != setting]
    for run in [reference, *replicas]:
        print(f"{run.name}: {run_setting(run, variant)}", file=sys.stderr)
    return write_variants(reference, replicas, variant)


def viz_command(args: argparse.Namespace) -> list[str]:
    """Run `hmu viz` (hmu.viz.anim's command line)."""
    from hmu.viz.anim import run

    return [run(args)]


def add_replica_options(parser: argparse.ArgumentParser) -> None:
    """--folder, --exp and --no-experiments: where `hmu seeds` and `hmu variants` find the
    replicas they compare with the workspace."""
    parser.add_argument(
        "--folder", action="append", default=[], help="also a replica in another project folder"
    )
    parser.add_argument(
        "--exp",
        action="append",
        default=[],
        help="a DVC experiment by name, of any baseline commit (default: every one of HEAD)",
    )
    parser.add_argument(
        "--no-experiments", action="store_true", help="do not look for DVC experiments"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `hmu` (one subcommand per task)."""
    from hmu.viz.anim import add_arguments as add_viz_arguments

    parser = argparse.ArgumentParser(prog="hmu", description="Human Motion Unlearning toolkit.")
    parser.add_argument("--version", action="version", version=f"hmu {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate",
        help="generate motions from text with a trained or unlearned model",
        description="Generate motions from text with models/<dataset>/<model>/<method>.",
    )
    gen.add_argument("--dataset", required=True, help="dataset name, e.g. humanml3d")
    gen.add_argument("--model", required=True, choices=("momask", "bamm"))
    gen.add_argument(
        "--method", default="base", help="base, retrain, finetune, uce, rece or lcr (default: base)"
    )
    gen.add_argument("--text", action="append", help="a prompt (repeat for several)")
    gen.add_argument("--prompts", help="text file with one prompt per line")
    gen.add_argument(
        "--length",
        type=int,
        default=None,
        help="motion length in frames at 20 fps (4..196); default: predicted",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument(
        "--models-root", default="models", help="folder of the models (default models)"
    )
    gen.add_argument(
        "--out", required=True, help="output .npy (joints), .gif, .mp4 or .bvh (one per prompt)"
    )
    gen.set_defaults(func=generate_command)

    imp = commands.add_parser(
        "import-official",
        help="convert official MoMask/BAMM checkpoints into a method `generate` can use",
        description="Convert official MoMask/BAMM checkpoints (.tar) into our safetensors and "
        "write models/<dataset>/<model>/<method>/method.json (text encoder: CLIP).",
    )
    imp.add_argument("--dataset", required=True, help="dataset name, e.g. humanml3d")
    imp.add_argument("--model", required=True, choices=("momask", "bamm"))
    imp.add_argument("--vq", required=True, help="RVQ-VAE checkpoint (net_best_fid.tar)")
    imp.add_argument("--trans", required=True, help="masked / BAMM transformer checkpoint")
    imp.add_argument("--res", help="residual transformer checkpoint")
    imp.add_argument("--length-estimator", help="length estimator checkpoint (finest.tar)")
    imp.add_argument("--mean", required=True, help="the VQ's meta/mean.npy")
    imp.add_argument("--std", required=True, help="the VQ's meta/std.npy")
    imp.add_argument("--clip-weights", help="OpenAI CLIP ViT-B/32 weights (e.g. ViT-B-32.pt)")
    imp.add_argument("--method", default="official", help="method name (default official)")
    imp.add_argument(
        "--models-root", default="models", help="folder of the models (default models)"
    )
    imp.set_defaults(func=import_official_command)

    chk = commands.add_parser(
        "check-params",
        help="check params.yaml against the schema (types, ranges, allowed values)",
        description="Check every key of a params file; errors name the key, the value and what "
        "is allowed.",
    )
    chk.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    chk.set_defaults(func=check_params_command)

    meth = commands.add_parser(
        "methods",
        help="list the methods the pipeline produced, per dataset and model",
        description="List models/<dataset>/<model>/<method>/method.json: what `hmu generate "
        "--method` accepts.",
    )
    meth.add_argument(
        "--models-root", default="models", help="folder of the models (default models)"
    )
    meth.set_defaults(func=methods_command)

    seeds = commands.add_parser(
        "seeds",
        help="pool the metrics of training-seed replicas into metrics/seeds.json and seeds.md",
        description="Collect the workspace and every DVC experiment of HEAD that differs from "
        "it in train.seed alone (`dvc exp run -S train.seed=1`), pool their metrics and write "
        "metrics/seeds.json and metrics/seeds.md (then `dvc repro report`).",
    )
    add_replica_options(seeds)
    seeds.set_defaults(func=seeds_command)

    variants = commands.add_parser(
        "variants",
        help="compare the workspace with its replicas under another precision or BAMM second "
        "pass (metrics/precision.json, metrics/refine.json)",
        description="Compare the workspace with every DVC experiment of HEAD that differs from "
        "it in one params block alone, cell by cell: `precision` (`dvc exp run -S "
        "precision.train=bf16`, `-S precision.generate=fp32`; metrics/precision.json and .md) "
        "or `bamm` (`-S bamm.refine=upstream`; metrics/refine.json and .md). Then `dvc repro "
        "report`. Without a replica, record that only one setting was measured.",
    )
    variants.add_argument("block", choices=("precision", "bamm"), help="the params block")
    add_replica_options(variants)
    variants.set_defaults(func=variants_command)

    viz = commands.add_parser(
        "viz",
        help="render a dataset motion or a generated one as a GIF/MP4/PNG or a BVH file",
        description="Render a motion as a stick-figure animation or a BVH file "
        "(python -m hmu.viz.anim).",
    )
    add_viz_arguments(viz)
    viz.set_defaults(func=viz_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hmu` script."""
    args = build_parser().parse_args(argv)
    try:
        written = args.func(args)
    except (*BAD_INPUT, RuntimeError) as err:
        if os.environ.get("HMU_DEBUG"):
            raise
        print(f"hmu {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
