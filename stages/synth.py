"""Stage synth@<dataset>: generate the embedded synthetic benchmark into data/raw/<dataset>.

Reads params synth.<dataset> (see hmu.data.synth.SynthConfig for the keys), writes the dataset
in its upstream layout and its summary to metrics/<dataset>/synth.json, and prints it.
"""

import json
import sys
from pathlib import Path

from hmu.data.synth import SynthConfig, generate_dataset
from hmu.errors import exits_on_bad_input
from hmu.io import write_json
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.timings import record_timing


def main(dataset: str) -> dict:
    check_params(f"synth.{dataset}")
    config = SynthConfig.from_params(section(load_params(), f"synth.{dataset}"))
    summary = {"dataset": dataset, **generate_dataset(Path("data/raw") / dataset, config)}
    record_timing(f"{dataset}/synth", seconds=summary.pop("seconds"))
    write_json(Path("metrics") / dataset / "synth.json", summary)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return summary


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
