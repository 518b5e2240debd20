"""Shared timing helper of the bench scripts (run them as `python bench/<script>.py`)."""

import time


def best_time(fn, repeats: int) -> float:
    """Fastest wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
