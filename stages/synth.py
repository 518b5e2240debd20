"""DVC stage `synth@<dataset>`: generate the embedded synthetic benchmark into data/raw/<dataset>.

Reads the params.yaml section synth.<dataset> (see hmu.data.synth.SynthConfig for the keys),
writes the dataset in its upstream layout, prints a summary and writes it to
metrics/<dataset>/synth.json.

    python stages/synth.py humanml3d [--params params.yaml] [--out data/raw/humanml3d]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from hmu.data.synth import SynthConfig, generate_dataset
from hmu.io import write_json


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="name of the params.yaml section synth.<dataset>")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", help="output folder (default data/raw/<dataset>)")
    parser.add_argument("--metrics", help="summary JSON (default metrics/<dataset>/synth.json)")
    args = parser.parse_args(argv)

    params_path = Path(args.params)
    if not params_path.is_file():
        raise FileNotFoundError(f"{params_path}: params file not found")
    params = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    section = (params.get("synth") or {}).get(args.dataset)
    if section is None:
        raise ValueError(f"{params_path}: no section synth.{args.dataset}")
    config = SynthConfig.from_params(section)

    out = Path(args.out or Path("data/raw") / args.dataset)
    summary = {"dataset": args.dataset, **generate_dataset(out, config)}
    write_json(args.metrics or Path("metrics") / args.dataset / "synth.json", summary)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return summary


if __name__ == "__main__":
    main()
