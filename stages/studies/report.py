"""Stage studies_report (studies/dvc.yaml): metrics/studies.md from the studies' sections.

Usage: python stages/studies/report.py STUDY [STUDY ...] -- the studies to gather (each must
have written metrics/studies/<study>/section.md); they appear in issue 14's order.
"""

import sys

from hmu.errors import exits_on_bad_input
from hmu.io import write_text
from hmu.studies.report import build_report

OUT = "metrics/studies.md"


def main(studies: list[str]) -> None:
    if not studies:
        raise ValueError("usage: report.py STUDY [STUDY ...]: name at least one study")
    write_text(OUT, build_report(studies))
    print(f"studies_report: {OUT} ({len(studies)} studies)")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1:])
