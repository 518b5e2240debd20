"""Stage report: metrics/<ds>/<model>/<method>.json -> metrics/report.md (a generated summary
and short tables), report_full.md (every metric), report.json, plots.

Reads params `datasets`, `models`, `methods` (the D_r reference, retrain, always first). The
tables follow the paper's Table 1 (hmu.eval.report); missing metrics files are listed in the
report. The paired bootstrap tests read eval/<ds>/<model>/<method>.npz where present.
"""

import os

# one BLAS thread: the bootstrap's many small decompositions only slow down with more threads
# on a shared 2-core machine (set before numpy loads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hmu.errors import exits_on_bad_input  # noqa: E402
from hmu.eval.report import write_report  # noqa: E402
from hmu.params import load_params, section  # noqa: E402
from hmu.params_schema import check_params  # noqa: E402


def main() -> None:
    check_params("datasets", "models", "methods")
    params = load_params()
    write_report(
        "metrics",
        "metrics/report.md",
        "metrics/report_plots",
        section(params, "datasets"),
        section(params, "models"),
        ["retrain", *section(params, "methods")],  # the D_r reference row always comes first
        out_json="metrics/report.json",
        samples_dir="eval",
        out_full="metrics/report_full.md",
    )
    print(
        "report: wrote metrics/report.md, metrics/report_full.md, metrics/report.json, "
        "metrics/report_plots/"
    )


if __name__ == "__main__":
    exits_on_bad_input(main)()
