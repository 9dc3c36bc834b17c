"""The synthetic suite's bracket: how much of the gap between random-noise and synth-oracle each
model closes, per task, from a results folder.

    closed(task) = (model - random-noise) / (synth-oracle - random-noise)

Prints a markdown table: each model's main score per task, then the share of the gap it closes
on each task and the median over the tile tasks (classification, retrieval, VQA). Produce the
results first, e.g.

    harness run --model synth-reference --tasks synthetic --output results
    harness run --model synth-oracle --model random-noise --model colour-stats \\
        --model timm:resnet18 --model timm:vit_tiny_patch16_224 --random-init --tasks synthetic --output results

Usage: python benchmarks/bracket.py results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness.results import ResultStore

TILE_TASKS = ("synth-tiles", "synth-grade", "synth-mitosis", "synth-retrieval", "synth-vqa")
OTHER_TASKS = ("synth-slides", "synth-survival", "synth-report", "synth-plism", "synth-invariance", "synth-st",
               "synth-seg")
MODELS = ("synth-oracle", "synth-reference", "colour-stats", "timm--resnet18-random-init",
          "timm--vit_tiny_patch16_224-random-init", "random-noise")


def scores(results: Path, slug: str, tasks) -> dict[str, float]:
    store = ResultStore(results)
    out = {}
    for task in tasks:
        result = store.read(store.path(slug, task))
        if result is not None and result.status == "ok":
            out[task] = result.main_score.value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    tasks = TILE_TASKS + OTHER_TASKS
    table = {slug: scores(args.results, slug, tasks) for slug in MODELS}
    oracle, noise = table["synth-oracle"], table["random-noise"]
    print("| model | " + " | ".join(tasks) + " | median gap closed, tile tasks |")
    print("| --- " * (len(tasks) + 2) + "|")
    for slug in MODELS:
        cells, closed = [], []
        for task in tasks:
            value = table[slug].get(task)
            if value is None:
                cells.append("-")
                continue
            gap = oracle.get(task, np.nan) - noise.get(task, np.nan)
            share = (value - noise.get(task, np.nan)) / gap if gap else np.nan
            if task in TILE_TASKS and np.isfinite(share):
                closed.append(share)
            cells.append(f"{value:.3f} ({share:.0%})" if np.isfinite(share) else f"{value:.3f}")
        median = f"{np.median(closed):.0%}" if closed else "-"
        print(f"| {slug} | " + " | ".join(cells) + f" | {median} |")


if __name__ == "__main__":
    main()
