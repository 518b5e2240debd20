"""Stage report: metrics/<ds>/<model>/<method>.json -> metrics/report.md, report.json, plots.

Reads params `datasets`, `models`, `methods`. The tables follow the
paper's Table 1 (hmu.eval.report); missing metrics files are listed in the report.
"""

from hmu.eval.report import write_report
from hmu.params import load_params, section


def main() -> None:
    params = load_params()
    write_report(
        "metrics",
        "metrics/report.md",
        "metrics/report_plots",
        section(params, "datasets"),
        section(params, "models"),
        section(params, "methods"),
        out_json="metrics/report.json",
    )
    print("report: wrote metrics/report.md, metrics/report.json, metrics/report_plots/")


if __name__ == "__main__":
    main()
