"""The evaluation heads' own speed: the optimiser step and folds side by side.

Prints, from one run on this machine, for ABMIL folds shaped like synth-slides' (about 390 training
bags of 2-6 tiles, 192 dims, 3 classes, 5 epochs, one bag per step, one thread):
  AdamW         seconds per fold with PyTorch's default AdamW on CPU (a Python loop over tensors)
                and with the heads' multi-tensor AdamW (harness/scoring/head_optimiser.py), their
                ratio, and whether the two predict bit-identical outputs
  folds         seconds for 5 folds one after another and side by side in forked workers
                (harness/scoring/parallel_fits.py, one per core), their ratio, and whether the
                predictions are bit-identical

Usage: python benchmarks/evaluation.py [--folds 5] [--bags 390] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.scoring import abmil
from harness.scoring.abmil import AbmilConfig, train_abmil
from harness.scoring.parallel_fits import map_fits, spare_cores


def synthetic_fold(f: int, n_bags: int, epochs: int) -> np.ndarray:
    """Train ABMIL on fold f's bags; the predictions for 50 held-out bags."""
    rng = np.random.default_rng(f)
    bags = [rng.standard_normal((int(rng.integers(2, 7)), 192)).astype(np.float32) for _ in range(n_bags + 50)]
    y = rng.integers(0, 3, len(bags))

    def loss_of(logits, i):
        return torch.nn.functional.cross_entropy(logits[None], torch.tensor([y[i]]))

    predict = train_abmil(bags[:n_bags], loss_of, 3, AbmilConfig(epochs=epochs), seed=f)
    return np.stack([predict(b) for b in bags[n_bags:]])


def timed(function):
    started = time.perf_counter()
    out = function()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--bags", type=int, default=390)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    multi_tensor = abmil.head_adamw
    abmil.head_adamw = lambda params, lr, weight_decay: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    default_s, default_out = timed(lambda: synthetic_fold(0, args.bags, args.epochs))
    abmil.head_adamw = multi_tensor
    foreach_s, foreach_out = timed(lambda: synthetic_fold(0, args.bags, args.epochs))
    print(f"AdamW per fold   default {default_s:.2f} s   multi-tensor {foreach_s:.2f} s   "
          f"ratio {default_s / foreach_s:.2f}x   bit-identical: {np.array_equal(default_out, foreach_out)}")

    def fit(f: int) -> np.ndarray:
        return synthetic_fold(f, args.bags, args.epochs)

    one_s, one_out = timed(lambda: map_fits(fit, args.folds, workers=1))
    many_s, many_out = timed(lambda: map_fits(fit, args.folds))
    same = all(np.array_equal(a, b) for a, b in zip(one_out, many_out))
    print(f"{args.folds} folds         one after another {one_s:.2f} s   side by side ({min(args.folds, spare_cores())} "
          f"workers) {many_s:.2f} s   ratio {one_s / many_s:.2f}x   bit-identical: {same}")


if __name__ == "__main__":
    main()
