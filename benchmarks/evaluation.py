"""The evaluation heads' own speed: the optimiser step and folds side by side.

Prints, from one run on this machine, for ABMIL folds shaped like synth-slides' (about 390 training
bags of 2-6 tiles, 192 dims, 3 classes, 5 epochs, one bag per step, one thread):
  AdamW         seconds per fold with PyTorch's default AdamW on CPU (a Python loop over tensors)
                and with the heads' multi-tensor AdamW (harness/scoring/head_optimiser.py), their
                ratio, and whether the two predict bit-identical outputs
  folds         seconds for 5 folds one after another and side by side in forked workers
                (harness/scoring/parallel_fits.py, one per core), their ratio, and whether the
                predictions are bit-identical
  decoder       seconds to train eva's conv-ms segmentation decoder (synth-seg's settings: 100 steps
                of 8, a validation every 25) with its tensors in PyTorch's default layout and in
                the channels-last layout it uses (harness/scoring/segmentation_head.py), their ratio,
                and the largest difference in validation Dice: on feature maps shaped like
                synth-oracle's (5 x 56 x 56) and like a ViT-Ti's (192 x 14 x 14), 112 px tiles
  coxnet        survival's CoxNet at alpha 0.01 (l1_ratio 0.5) with more dims than slides, on noise
                shaped like random-noise on an inner fold of synth-survival (262 x 384) and like a
                ViT-L on a few hundred patients (300 x 1,024): seconds for the direct fit as
                Patho-Bench makes it (100,000 iterations at most; "diverged" where sksurv stops
                with "weights are too large") and for the survival family's fit_coxnet (the
                warm-started path where the direct fit does not converge in 10,000), their ratio,
                and each fit's penalised objective (lower is better)

Usage: python benchmarks/evaluation.py [--folds 5] [--bags 390] [--epochs 5] [--parts abmil,decoder,coxnet]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.scoring import abmil, segmentation_head
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


def decoder_fit(features_shape: tuple[int, int, int]) -> list[tuple[int, float]]:
    """Train the conv-ms decoder on 144 tiles whose mask is, cell by cell, the argmax of the first
    five feature channels (so there is something to learn); its validation (step, Dice) history."""
    from harness.scoring.segmentation_head import DecoderConfig, DenseBatches, train_decoder
    from harness.tasks.segmentation import SegmentationParams, headline_dice

    rng = np.random.default_rng(0)
    channels, h, w = features_shape

    def split(n: int) -> DenseBatches:
        features = rng.standard_normal((n, channels, h, w)).astype(np.float16)
        coarse = features[:, :5].astype(np.float32).argmax(axis=1)  # (n, h, w): a class per cell
        masks = np.kron(coarse, np.ones((112 // h, 112 // w), np.int64)).astype(np.uint8)
        images = rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
        return DenseBatches(features, images, masks)

    train, val = split(144), split(48)

    def score(predicted: np.ndarray, masks: np.ndarray) -> float:  # the family's headline Dice
        return headline_dice(predicted, masks, 5, SegmentationParams())

    config = DecoderConfig(kind="conv-ms", steps=100, batch_size=8, eval_every=25)
    return train_decoder(train, val, 5, config, seed=0, score=score).val_scores


def timed(function):
    started = time.perf_counter()
    out = function()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--bags", type=int, default=390)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--parts", default="abmil,decoder,coxnet", help="comma-separated: abmil, decoder, coxnet")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "abmil" in parts:
        abmil_parts(args)
    if "decoder" in parts:
        decoder_part()
    if "coxnet" in parts:
        coxnet_part()


def coxnet_part() -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.util import Surv

    from harness.tasks.survival import coxnet_objective, fit_coxnet

    for seed, (n, d) in enumerate(((262, 384), (262, 384), (300, 1024))):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, d))
        time_, event = rng.exponential(10.0, n), rng.random(n) < 0.6
        x, y = (x - x.mean(0)) / x.std(0), Surv.from_arrays(event, time_)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            try:
                direct = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.01], max_iter=100_000).fit(x, y)
                unconverged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
                direct_text = (f"{coxnet_objective(x, event, time_, direct.coef_[:, -1], 0.01, 0.5):.5f}"
                               + (" (not converged)" if unconverged else ""))
            except ArithmeticError:
                direct_text = "diverged"
        direct_s = time.perf_counter() - started
        ours_s, ours = timed(lambda: fit_coxnet(x, y, 0.01, 0.5))
        print(f"coxnet {n} x {d:<5} direct {direct_s:.2f} s, objective {direct_text}   fit_coxnet {ours_s:.2f} s, "
              f"objective {coxnet_objective(x, event, time_, ours.coef_[:, -1], 0.01, 0.5):.5f}   "
              f"ratio {direct_s / ours_s:.1f}x")


def decoder_part() -> None:
    from harness.memory_allocator import keep_freed_memory

    keep_freed_memory()  # as `harness run` sets it: a step's activations reuse the last step's pages
    layout = segmentation_head.MEMORY_FORMAT
    for name, shape in (("synth-oracle", (5, 56, 56)), ("ViT-Ti", (192, 14, 14))):
        segmentation_head.MEMORY_FORMAT = torch.contiguous_format
        default_s, default_history = timed(lambda: decoder_fit(shape))
        segmentation_head.MEMORY_FORMAT = layout
        harness_s, harness_history = timed(lambda: decoder_fit(shape))
        gap = max(abs(a[1] - b[1]) for a, b in zip(default_history, harness_history))
        print(f"decoder {name:<12} {'x'.join(map(str, shape)):>10}   default layout {default_s:.2f} s   "
              f"channels-last {harness_s:.2f} s   ratio {default_s / harness_s:.2f}x   "
              f"largest validation Dice difference {gap:.6f}")


def abmil_parts(args) -> None:

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
