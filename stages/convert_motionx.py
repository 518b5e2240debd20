"""Stage convert_motionx: Motion-X SMPL-X (322-dim, 30 fps) -> SMPL -> joints -> 263-dim features.

Reads the Motion-X folder named by data.motionx.root (the embedded benchmark by default) and
writes data/processed/motionx/converted/ (feature store, 20 fps joints store, captions) and
metrics/motionx/convert.json (counts, skipped inputs by reason, and, on the embedded benchmark,
the error of the converted joints against the generator's ground truth in cm).
"""

import time
from pathlib import Path

from hmu.data.motionx import convert_folder
from hmu.data.synth_check import conversion_error_cm
from hmu.errors import exits_on_bad_input
from hmu.io import write_json
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.timings import record_timing, since


def main() -> None:
    check_params("data.motionx")
    cfg = section(load_params(), "data.motionx")
    out = processed_dir("motionx") / "converted"
    start = time.perf_counter()
    table, report = convert_folder(
        cfg["root"],
        None,
        out,
        on_error=cfg["on_error"],
        body_model_path=cfg["body_model"],
        gender=cfg["gender"],
        up_axis=cfg["up_axis"],
    )
    summary = {
        "motions": len(table),
        "skipped": {reason: len(ids) for reason, ids in report.items()},
        "skipped_ids": report,
    }
    seconds = since(start)
    record_timing("motionx/convert", seconds=seconds)
    summary.update(conversion_error_cm(Path(cfg["root"]), out / "joints"))
    write_json("metrics/motionx/convert.json", summary)
    print(
        f"convert_motionx: {summary['motions']} clips, skipped {summary['skipped']}, "
        f"{seconds:.1f} s; joint error vs ground truth: "
        f"{summary.get('joint_error_cm', 'n/a (no ground truth)')} cm"
    )


if __name__ == "__main__":
    exits_on_bad_input(main)()
