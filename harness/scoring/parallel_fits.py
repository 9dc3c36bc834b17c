"""Independent fits (cross-validation folds, probe seeds) side by side, one forked process per core.

The heads the protocols train (ABMIL with one bag per step, linear probes, small decoders) run on
one thread (`single_thread`): synchronising threads costs them more than it saves, so the
machine's other cores sit idle. Their fits are independent and each is seeded by its index, so
running them in worker processes gives the same numbers as running them one after another, in a
fraction of the time (`benchmarks/evaluation.py`).

Workers are forked, so a fit's function and data reach them without being pickled; only what a
fit returns travels back. Where fork is unavailable (Windows), inside a worker process, on one
core, or once this process has initialised CUDA (a forked child cannot use it, and PyTorch's
optimisers query it on every step: "CUDA error: initialization error", seen on an H200 after
embedding there), the fits run in this process, one after another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from typing import Callable, TypeVar

T = TypeVar("T")

_fit: Callable[[int], object] | None = None  # the running map's function, inherited by the workers


def spare_cores() -> int:
    """The cores this process may use (its CPU affinity where the platform says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_fits(fit: Callable[[int], T], n: int, workers: int | None = None) -> list[T]:
    """[fit(0), ..., fit(n - 1)], in order; a fit's exception is raised here."""
    global _fit
    workers = min(n, workers or spare_cores())
    if (workers <= 1 or "fork" not in mp.get_all_start_methods() or mp.current_process().daemon
            or _fit is not None or _cuda_initialised()):
        return [fit(i) for i in range(n)]
    _fit = fit
    _import_what_fits_import()
    try:
        with mp.get_context("fork").Pool(workers, initializer=_one_thread) as pool:
            return pool.map(_run_fit, range(n), chunksize=1)
    finally:
        _fit = None


def _cuda_initialised() -> bool:
    import torch

    return torch.cuda.is_initialized()


def _import_what_fits_import() -> None:
    """Import here, once, what a fit would otherwise import in every worker (a forked worker's
    imports end with it): PyTorch's optimisers import torch._dynamo on first use, about 1.2 s of
    CPU a worker on this project's 2-core machine, paid again by every pool's every worker."""
    if "torch" in sys.modules:
        import torch._dynamo  # noqa: F401


def _one_thread() -> None:
    """A forked worker computes on one thread: the parent's OpenMP pool does not survive the fork,
    and a parallel region entered in the child waits for threads that do not exist (as in
    PyTorch's DataLoader workers, which set the same)."""
    import torch

    torch.set_num_threads(1)


def _run_fit(i: int):
    assert _fit is not None
    return _fit(i)
