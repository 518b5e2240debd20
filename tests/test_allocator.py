"""hmu.allocator: after keep_freed_memory, a freed 40 MB activation is reused, not refaulted.

glibc maps every block above 32 MiB (its dynamic threshold's cap) anew at each allocation.
"""

import platform
import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from hmu.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults_of_forwards():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        activation = torch.ones(10_000_000)  # 40 MB, freed at the next iteration
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_forwards()  # first touch of the block
print(kept, faults_of_forwards())
"""


def _faults(mode: str) -> tuple[str, int]:
    """Run CHILD in a fresh process (the setting is process-wide) -> (kept, page faults)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
    )
    kept, faults = out.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt thresholds are glibc's")  # fmt: skip
def test_freed_activations_are_reused_without_page_faults():
    kept, faults = _faults("keep")
    assert kept == "True"
    assert faults < 1000  # 20 x 9800 pages if each block were faulted in again
    assert _faults("default")[1] > 10 * max(faults, 100)  # what the setting removes
