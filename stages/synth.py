"""Stage synth@<dataset>: generate the embedded synthetic benchmark into data/raw/<dataset>.

Reads params synth.<dataset> (see hmu.data.synth.SynthConfig for the keys), writes the dataset
in its upstream layout and its summary to metrics/<dataset>/synth.json, and prints it.
"""

import json
import sys
from pathlib import Path

from hmu.data.synth import SynthConfig, generate_dataset
from hmu.io import write_json
from hmu.params import load_params, section


def main(dataset: str) -> dict:
    config = SynthConfig.from_params(section(load_params(), f"synth.{dataset}"))
    summary = {"dataset": dataset, **generate_dataset(Path("data/raw") / dataset, config)}
    write_json(Path("metrics") / dataset / "synth.json", summary)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return summary


if __name__ == "__main__":
    main(sys.argv[1])
