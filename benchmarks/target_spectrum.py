"""Where a teacher keeps what a task needs, and how much a cosine loss weighs it there.

A distillation target is the teacher's embedding, PHI-S standardised (a rotation and one scalar:
distillers/losses.py), and the loss is 1 - cos. A rotation and a scalar leave the spectrum as it
is, so a part of the target weighs in the loss about as its share of the target's variance. This
script measures, per teacher, on its embeddings of the distillation tiles (`--dataset`, the
training split the students learn from, whose generator factors are known):

  factor shares: the share of the target's variance that the generator's factors explain
      linearly, added one after another: the tissue (one-hot), cellularity, atypia (per tissue:
      visible in tumour nuclei, a little in lymphocytes and glands) and the mitosis count (one
      column per count, tumour tiles). A factor holding 1% of the variance is 1% of what a student
      is asked to reproduce.
  by direction: a logistic-regression probe solved to its optimum (`probe_score`) on the
      embeddings projected on the k leading principal directions of those targets, balanced
      accuracy on each task's test split, and the share of the variance the k directions hold.
      A task read from few leading directions is not hidden in the spectrum's tail.

Usage: python benchmarks/target_spectrum.py [--teachers synth-teacher-nuclei synth-teacher-tissue]
       [--tasks synth-tiles synth-grade synth-mitosis] [--dataset synth-distill-mixed] [--include YAML]
       [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

KS = (1, 2, 4, 8, 16, 32, 64, 128)


def principal_directions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, directions as columns by falling variance, each direction's share of the variance)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    eigenvalues, basis = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = eigenvalues[order].clip(min=0)
    return mean, basis[:, order], eigenvalues / eigenvalues.sum()


def project(x: np.ndarray, mean: np.ndarray, directions: np.ndarray, k: int) -> np.ndarray:
    return ((np.asarray(x, dtype=np.float64) - mean) @ directions[:, :k]).astype(np.float32)


def explained_share(x: np.ndarray, regressors: np.ndarray) -> float:
    """Share of the total variance of x (n, d) that a least-squares fit on the regressors (with an
    intercept) explains."""
    x = np.asarray(x, dtype=np.float64)
    design = np.column_stack([np.ones(len(x)), regressors])
    residual = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    centred = x - x.mean(axis=0)
    return float(1.0 - (residual**2).sum() / (centred**2).sum())


def factor_columns(latents: np.ndarray) -> dict[str, np.ndarray]:
    """The generator's factors as regressors, from a tile suite's latents (harness/synth/tissue.py:
    one-hot tissue, then cellularity, atypia, mitoses / MAX_MITOSES), in the order they are added."""
    from harness.synth.tissue import MAX_MITOSES, TISSUE_CLASSES

    n_tissues = len(TISSUE_CLASSES)
    tissue = latents[:, :n_tissues]
    cellularity, atypia = latents[:, n_tissues], latents[:, n_tissues + 1]
    counts = np.rint(latents[:, n_tissues + 2] * MAX_MITOSES).astype(int)
    tumour = tissue[:, TISSUE_CLASSES.index("tumour")]
    return {"tissue": tissue[:, 1:],  # the intercept stands for the first
            "cellularity": cellularity[:, None],
            "atypia": atypia[:, None] * tissue,
            "mitoses": np.stack([(counts == c) * tumour for c in range(1, MAX_MITOSES + 1)], 1).astype(float)}


def factor_shares(x: np.ndarray, latents: np.ndarray) -> dict[str, float]:
    """Each factor's added share of the variance of x, the factors added in order."""
    shares, columns, before = {}, [], 0.0
    for name, block in factor_columns(latents).items():
        columns.append(block)
        now = explained_share(x, np.column_stack(columns))
        shares[name], before = now - before, now
    shares["unexplained"] = 1.0 - before
    return shares


def probe_score(splits: dict[str, tuple[np.ndarray, np.ndarray]], n_classes: int) -> float:
    """Balanced accuracy on test of a logistic-regression probe solved to its optimum (the harness's
    `probe: logistic`, scikit-learn's objective at its default C = 1) on train and val, each
    direction scaled to unit variance on them: whether the directions hold the task linearly, not
    how fast a probe finds it (eva's probe, lr 3e-4, stopped on one direction before it turned)."""
    from harness.scoring.logistic_probe import fit_logistic_probe
    from harness.scoring.metrics import balanced_accuracy

    fitted = [splits[s] for s in ("train", "val") if s in splits]  # val, where there is one, joins train
    x = np.concatenate([x for x, _ in fitted]).astype(np.float64)
    y = np.concatenate([y for _, y in fitted])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    probe = fit_logistic_probe((x - mean) / std, y, n_classes, cost=1.0)
    x_test, y_test = splits["test"]
    return float(balanced_accuracy(y_test, probe.predict_logits((x_test - mean) / std).argmax(1)))


def main(argv: list[str] | None = None) -> None:
    from distill_retention import TEACHERS, Study, print_table  # the study this script takes apart

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=[TEACHERS["nuclei"], TEACHERS["tissue"]])
    parser.add_argument("--tasks", nargs="+", default=["synth-tiles", "synth-grade", "synth-mitosis"])
    parser.add_argument("--dataset", default=Study.dataset, help="the distillation tiles (training split)")
    parser.add_argument("--include", action="append", default=[], help="extra registry YAML")
    parser.add_argument("--cache-dir", type=Path, help="default: $HARNESS_CACHE or ~/.cache/harness")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from harness.embedding_cache import EmbeddingCache
    from harness.errors import HarnessError
    from harness.models.loading import LoadOptions, load_encoder
    from harness.registry import load_registry
    from harness.runner import one_line
    from harness.sources import DataContext, open_source
    from harness.sources.base import default_cache_dir
    from harness.tile_embedding import default_extract_options, embed_split

    cache_dir = args.cache_dir or default_cache_dir()
    context = DataContext(cache_dir=cache_dir, data_root=cache_dir / "data")
    try:
        registry = load_registry([Path(p) for p in args.include])
    except (HarnessError, ValueError, OSError) as error:
        raise SystemExit(f"target_spectrum.py: {one_line(error)}") from None
    cache, extract = EmbeddingCache(cache_dir), default_extract_options("cpu")
    unknown = [t for t in args.tasks if t not in registry.tasks]
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)}")
    if args.dataset not in registry.datasets:
        parser.error(f"--dataset: unknown {args.dataset}")
    sources = {}

    def source_of(dataset: str):
        if dataset not in sources:
            source = open_source(dataset, registry.datasets[dataset], context, registry.datasets)
            availability = source.availability()
            if not availability.ok:
                raise SystemExit(f"{dataset}: {availability.reason}")
            source.prepare()  # generated on first use
            sources[dataset] = source
        return sources[dataset]

    def embeddings(encoder, dataset: str, split: str) -> np.ndarray:
        source = source_of(dataset)
        return np.asarray(embed_split(encoder, source, source.fingerprint(), split, cache, extract)[0].embeddings)

    distillation = source_of(args.dataset)
    latents = distillation.latents("train") if "train" in distillation.split_names() else None
    if latents is None:
        parser.error(f"--dataset {args.dataset}: the factor shares need a generated dataset with a train split "
                     "(its tiles' latents)")
    for task in args.tasks:
        source = source_of(registry.tasks[task].dataset)
        if not {"train", "test"} <= set(source.split_names()) or source.labels("train") is None:
            parser.error(f"--tasks {task}: a probe needs labelled train and test splits "
                         f"(it has {', '.join(source.split_names())})")
    rows, factors = [], []
    for teacher in args.teachers:
        try:
            encoder = load_encoder(teacher, LoadOptions())
        except Exception as error:  # noqa: BLE001 - a model that cannot be built: one line, not a traceback
            raise SystemExit(f"--teachers {teacher}: {one_line(error)}") from None
        targets = embeddings(encoder, args.dataset, "train")
        factors.append([teacher, *(f"{100 * v:.1f}%" for v in factor_shares(targets, latents).values())])
        print(" | ".join(factors[-1]), flush=True)
        mean, directions, share = principal_directions(targets)
        dim = directions.shape[1]
        data = {}
        for task in args.tasks:
            dataset = registry.tasks[task].dataset
            source = source_of(dataset)
            splits = [s for s in ("train", "val", "test") if s in source.split_names()]
            data[task] = ({s: (embeddings(encoder, dataset, s), np.asarray(source.labels(s))) for s in splits},
                          len(source.class_names()))
        for k in [*(k for k in KS if k < dim), dim]:
            scores = []
            for task in args.tasks:
                splits, n_classes = data[task]
                scores.append(probe_score({s: (project(x, mean, directions, k), y) for s, (x, y) in splits.items()},
                                          n_classes))
            rows.append([teacher, str(k), f"{100 * share[:k].sum():.1f}%", *(f"{v:.3f}" for v in scores)])
            print(" | ".join(rows[-1]), flush=True)
    print(f"\nShare of each teacher's target variance on {args.dataset}'s training tiles that the generator's "
          "factors explain, added in this order (least squares)\n")
    print_table(["teacher", "tissue", "cellularity", "atypia", "mitoses", "unexplained"], factors)
    print(f"Logistic-probe balanced accuracy on each task's test split, on the teacher's embeddings projected on "
          f"its k leading principal directions (PCA of its embeddings of {args.dataset}'s training tiles)\n")
    print_table(["teacher", "k", "variance share", *args.tasks], rows)


if __name__ == "__main__":
    main()
