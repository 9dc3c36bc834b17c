"""glibc's allocator, set for tensors that come and go.

By default glibc serves every allocation above its mmap threshold (128 KiB at first, raised as
blocks are freed, never past 32 MiB on 64-bit) with a fresh `mmap` and unmaps it on free. A decoder or a student that allocates activations of tens of MB on
every training step then asks the kernel for new pages on every step, and the kernel zeroes each
of them: on this project's 2-core machine the synth-oracle segmentation decoder spent 70 s in the
kernel for 100 s of computing. `keep_freed_memory()` serves large allocations from the heap
(M_MMAP_MAX 0) and gives freed memory back to the system only once more than 1 GiB of it sits at
the heap's top (M_TRIM_THRESHOLD), so the next step reuses the pages of the last one. jemalloc and
tcmalloc, which PyTorch's CPU performance guide suggests preloading, behave alike. The arithmetic
is unchanged: the same numbers come out, sooner (`benchmarks/allocator.py` prints both ways).

Left alone: a C library other than glibc, a user who set glibc's own MALLOC_*_ variables or
preloads another allocator (LD_PRELOAD), and HARNESS_ALLOCATOR=system (glibc's defaults); any other
value but 'harness' is refused in one line.
"""

from __future__ import annotations

import ctypes
import os
import platform

from harness.errors import HarnessError

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
TRIM_THRESHOLD = 1 << 30  # freed memory kept for reuse before the heap is trimmed (bytes)
GLIBC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> str:
    """Tune this process's glibc malloc as above; returns what was done, in words (for --verbose)."""
    reason = _left_alone()
    if reason:
        return f"allocator: left as is ({reason})"
    libc = ctypes.CDLL(None)  # the running C library's symbols
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "allocator: left as is (glibc refused mallopt)"
    return f"allocator: large blocks from the heap, freed memory kept up to {TRIM_THRESHOLD >> 20} MiB"


def _left_alone() -> str | None:
    chosen = os.environ.get("HARNESS_ALLOCATOR", "").strip().lower()
    if chosen == "system":
        return "HARNESS_ALLOCATOR=system"
    if chosen not in ("", "harness"):
        raise HarnessError(f"HARNESS_ALLOCATOR={chosen[:40]!r}: use 'system' (glibc's defaults) or 'harness' "
                           "(the default), or unset it")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "another allocator is preloaded"
    variables = [name for name in GLIBC_VARIABLES if name in os.environ]
    if variables:
        return f"{variables[0]} is set"
    return None
