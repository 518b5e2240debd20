"""Keep freed memory in the process: no page faults on the activations of every forward.

glibc's malloc hands blocks above its mmap threshold (128 KiB, raised up to 32 MiB as it goes)
back to the kernel when they are freed, and trims the heap top. A forward pass at paper size
allocates and frees activations of 10-15 MB per layer, so every pass faults them in again page
by page: one MoMask generation of 32 motions took 100k-520k minor faults on the project machine.
`keep_freed_memory` raises both thresholds once, so freed blocks are reused. Memory then stays at
its peak until the process ends. Numerics do not change: the same kernels run on other pages.
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap
TRIM_THRESHOLD = 2**31 - 1  # never trim the heap top (mallopt takes an int)


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse; True if it took, False without glibc.

    Process-wide and idempotent: call it from entry points that run many large forwards
    (generation, training), not from library code other programs import.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the process's C library
    if mallopt is None:  # not glibc (macOS); musl's mallopt accepts nothing
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    kept_blocks = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    kept_top = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(kept_blocks and kept_top)
