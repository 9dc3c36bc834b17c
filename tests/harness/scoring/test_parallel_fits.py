"""Fits run side by side in forked workers return what they return one after another."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.scoring.abmil import AbmilConfig, train_abmil
from harness.scoring.parallel_fits import map_fits


def _abmil_fit(f: int) -> np.ndarray:
    import torch

    rng = np.random.default_rng(f)
    bags = [rng.standard_normal((int(rng.integers(2, 6)), 16)).astype(np.float32) for _ in range(30)]
    y = rng.integers(0, 3, len(bags))

    def loss_of(logits, i):
        return torch.nn.functional.cross_entropy(logits[None], torch.tensor([y[i]]))

    predict = train_abmil(bags, loss_of, 3, AbmilConfig(epochs=2, hidden=8), seed=f)
    return np.stack([predict(b) for b in bags[:5]])


def test_workers_return_in_order_what_one_process_computes():
    sequential = map_fits(_abmil_fit, 3, workers=1)
    side_by_side = map_fits(_abmil_fit, 3, workers=2)
    assert len(side_by_side) == 3
    for one, other in zip(sequential, side_by_side):
        np.testing.assert_array_equal(one, other)  # bit-identical: each fit is seeded by its index
    assert not np.array_equal(sequential[0], sequential[1])


def test_a_fit_runs_in_a_worker_process():
    parent = os.getpid()
    pids = map_fits(lambda i: os.getpid(), 2, workers=2)  # a closure: workers are forked, not sent it
    assert parent not in pids


def test_after_cuda_is_initialised_the_fits_run_in_this_process(monkeypatch):
    """A forked child cannot use the CUDA its parent initialised (an optimiser's step queries it):
    once the parent has embedded on a GPU, the fits stay in the parent."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert set(map_fits(lambda i: os.getpid(), 2, workers=2)) == {os.getpid()}


def _fails_on_two(i: int) -> int:
    if i == 2:
        raise ValueError("fold 2 has no events")
    return i


def test_a_fits_error_reaches_the_caller():
    with pytest.raises(ValueError, match="fold 2 has no events"):
        map_fits(_fails_on_two, 4, workers=2)


def test_a_nested_map_runs_in_its_worker():
    inner = map_fits(lambda i: map_fits(lambda j: (os.getpid(), j), 2, workers=2), 2, workers=2)
    for pairs in inner:
        assert len({pid for pid, _ in pairs}) == 1  # the inner fits ran in the outer worker itself
        assert [j for _, j in pairs] == [0, 1]


def test_torch_in_a_worker_after_the_parent_used_its_thread_pool():
    """The parent's OpenMP pool does not survive fork: a multi-threaded op in a worker used to
    wait forever (the mean-pool probe's prediction did). Run in a fresh process with a deadline."""
    code = textwrap.dedent("""
        import torch
        from harness.scoring.parallel_fits import map_fits
        torch.set_num_threads(2)
        x = torch.randn(512, 512)
        x @ x  # the parent's thread pool is now running
        out = map_fits(lambda i: (x @ x)[i, :4].tolist(), 2, workers=2)
        print(all(torch.allclose(torch.tensor(row), (x @ x)[i, :4]) for i, row in enumerate(out)))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_workers_inherit_the_modules_an_optimiser_imports():
    """torch.optim imports torch._dynamo on first use (about a second): imported once before the
    fork, not again in every worker. Run in a fresh process, where nothing has imported it yet."""
    code = textwrap.dedent("""
        import sys
        import torch
        from harness.scoring.parallel_fits import map_fits
        print(map_fits(lambda i: "torch._dynamo" in sys.modules, 2, workers=2))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True]"
