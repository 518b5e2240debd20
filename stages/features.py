"""Stage features@<dataset>: the motion table, feature shards and Mean/Std of a dataset.

humanml3d-format datasets: reads the HumanML3D folder named by data.<ds>.root (new_joint_vecs,
texts, split files, Mean/Std). motionx-format datasets: takes the output of convert_motionx.
Writes data/processed/<ds>/motions/ (motions.parquet, features.npy, Mean.npy, Std.npy),
data/processed/<ds>/captions_raw.parquet and metrics/<ds>/import.json (counts, skipped inputs
by reason). On the embedded benchmark the generator's ground-truth action labels are joined in
(column toxic_gt), so toxicity can be measured without relying on keywords.
"""

import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from hmu.data.humanml import mean_std
from hmu.data.humanml_io import import_humanml3d
from hmu.data.store import MotionStore, write_store
from hmu.data.synth_check import ground_truth_labels
from hmu.errors import exits_on_bad_input
from hmu.io import write_json, write_npy, write_parquet
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.timings import record_timing, since


def _from_humanml(cfg: dict, out: Path) -> dict:
    result = import_humanml3d(
        cfg["root"], out / "motions", dataset=cfg["name"], on_error=cfg["on_error"]
    )
    write_parquet(out / "captions_raw.parquet", result.captions)
    (out / "motions" / "captions.parquet").unlink()
    for line in result.messages:
        print(line)
    return {
        "skipped": result.counts(),
        "skipped_ids": result.report,
        "mean_std_source": result.mean_std_source,
    }


def _from_converted(cfg: dict, out: Path) -> dict:
    converted = processed_dir(cfg["name"]) / "converted"
    store = MotionStore.open(converted)
    mean, std = mean_std(store.data)
    table = store.table.drop(columns=["length", "offset"])
    write_store(
        out / "motions",
        store.ids,
        [store.get(i) for i in range(len(store))],
        {c: table[c].tolist() for c in table.columns if c != "motion_id"},
    )
    write_npy(out / "motions" / "Mean.npy", mean)
    write_npy(out / "motions" / "Std.npy", std)
    shutil.copyfile(converted / "captions.parquet", out / "captions_raw.parquet")
    return {"mean_std_source": "computed"}


def main(dataset: str) -> None:
    check_params(f"data.{dataset}")
    cfg = {**section(load_params(), f"data.{dataset}"), "name": dataset}
    out = processed_dir(dataset)
    start = time.perf_counter()
    summary = _from_humanml(cfg, out) if cfg["format"] == "humanml3d" else _from_converted(cfg, out)
    table = pd.read_parquet(out / "motions" / "motions.parquet")
    labels = ground_truth_labels(Path(cfg["root"]), table["motion_id"])
    if labels is not None:
        table["toxic_gt"] = labels
        write_parquet(out / "motions" / "motions.parquet", table)
    summary.update(
        motions=len(table),
        frames=int(table["length"].sum()),
        partitions=table["partition"].value_counts().to_dict(),
        ground_truth_labels=labels is not None,
    )
    record_timing(f"{dataset}/features", seconds=since(start))
    write_json(f"metrics/{dataset}/import.json", summary)
    print(f"features@{dataset}: {len(table)} motions, skipped {summary.get('skipped', {})}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
