"""The distillation study's peak learning rate and length: one study student per (arm, steps,
learning rate), trained exactly as benchmarks/distill_retention.py trains it (same data, cached
targets, student, schedule), and where each ends on the training batches and on the held-out tiles.

Prints, per arm, number of steps and learning rate: the training loss (mean of the last
checkpoint's stretch) and the held-out loss (the same objective on the distillation set's held-out
tiles) at the end, how much each still fell over the last quarter, and the training minutes. The
held-out loss is what picks the learning rate (tiles of the distillation set, never the scored
suite's); across step counts it says how far from flat the study's 1,600 steps stop (a longer run
is another run: warm-up and cosine decay span its own steps).

Rerunning resumes: a student already trained in --out (folder <arm>-s<seed>-lr<lr>-<steps>steps) is
read, not trained again; one whose distill.json records other settings stops the run with one line.

Usage: python benchmarks/distill_lr.py --out DIR [--arms nuclei tissue] [--lrs 2e-3 5e-3 1e-2]
       [--seed 0] [--steps 1600 [3200 ...]] [--dataset D] [--include YAML] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_study():
    """benchmarks/distill_retention.py, for its arms and its distill arguments."""
    spec = importlib.util.spec_from_file_location("distill_retention", HERE / "distill_retention.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["distill_retention"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--arms", nargs="+", default=["nuclei", "tissue"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[2e-3, 5e-3, 1e-2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", nargs="+", type=int, default=[1600])
    parser.add_argument("--dataset", default="synth-distill-mixed", help="the distillation tiles (a registry dataset)")
    parser.add_argument("--include", action="append", default=[], help="extra registry YAML (passed to harness)")
    parser.add_argument("--cache-dir", help="passed to harness")
    args = parser.parse_args()
    study_module = load_study()
    unknown = set(args.arms) - set(study_module.ARMS)
    if unknown:
        parser.error(f"--arms: choose from {', '.join(study_module.ARMS)} (got {', '.join(sorted(unknown))})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from harness.cli import main as harness_main

    extra = tuple(a for f in args.include for a in ("--include", f))
    extra += ("--cache-dir", args.cache_dir) if args.cache_dir else ()
    rows = []
    for arm in args.arms:
        method, teachers, own = study_module.ARMS[arm]
        for steps in args.steps:
            study = study_module.Study(out=args.out, seeds=[args.seed], steps=steps, dataset=args.dataset, extra=extra)
            for lr in args.lrs:
                folder = args.out / f"{arm}-s{args.seed}-lr{lr:g}-{steps}steps"
                started, trained = time.perf_counter(), not (folder / "model.safetensors").exists()
                if trained:
                    command = ["distill", *study_module.distill_args(study, method, teachers, args.seed, steps, lr, own),
                               "--output", str(folder), *extra]
                    print("+ harness " + " ".join(command), flush=True)
                    if harness_main(command) != 0:
                        raise SystemExit(f"harness distill failed for {arm} at {steps} steps, lr {lr:g}; rerun to resume")
                minutes = (time.perf_counter() - started) / 60
                record = json.loads((folder / "distill.json").read_text())
                if (record["config"]["steps"], record["config"]["lr"]) != (steps, lr):
                    raise SystemExit(f"{folder}: trained for {record['config']['steps']} steps at lr "
                                     f"{record['config']['lr']:g}, not {steps} at {lr:g}; remove it or use another --out")
                train, held = ([p["loss"] for p in record[key]] for key in ("loss_curve", "held_out_curve"))
                drop = study_module.last_quarter_drop
                rows.append([arm, str(steps), f"{lr:g}", f"{train[-1]:.4f}", f"{drop(train):.1f}%", f"{held[-1]:.4f}",
                             f"{drop(held):.1f}%", f"{minutes:.1f}" if trained else "reused"])
    print(f"\nOne student per arm, number of steps and peak learning rate (seed {args.seed}; loss 1 - cos "
          "as the study trains it)\n")
    study_module.print_table(["arm", "steps", "lr", "training loss", "last-quarter drop", "held-out loss",
                              "last-quarter drop", "minutes"], rows)


if __name__ == "__main__":
    main()
