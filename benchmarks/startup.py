"""Where the seconds of a warm run go: a single-task `harness run` whose embeddings are cached.

Measured in one run, each in a fresh process where it matters:
  warm run      wall time of `harness run --model MODEL --tasks TASK` with the embeddings cached
                (a first, cold run fills the cache and is timed too)
  interpreter   `python -c pass`
  imports       `import harness.cli`, then what a run imports (runner, families, torch, timm):
                in-process, cumulative
  registry      reading tasks.yaml (and checking every task's parameters)
  model build   load_encoder(MODEL)
  fingerprint   the dataset's fingerprint (what keys its embeddings in the cache)
  evaluation    the family's eval_s as the warm run's result records it
The rest of the warm run (argument parsing, cache reads, writing the result, the summary table)
is the difference.

Usage: python benchmarks/startup.py [--model timm:vit_tiny_patch16_224] [--task synth-retrieval]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS = [sys.executable, "-m", "harness.cli"]


def wall(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def in_process_phases(model: str, task: str, cache: Path) -> dict[str, float]:
    """Cumulative import times and the run's own phases, in a fresh interpreter."""
    script = f"""
import json, time
t = {{}}
s = time.perf_counter(); import harness.cli; t["import harness.cli"] = time.perf_counter() - s
s = time.perf_counter(); import harness.runner, harness.tasks as tasks; t["import runner + families"] = time.perf_counter() - s
s = time.perf_counter(); import torch; t["import torch (rest)"] = time.perf_counter() - s
s = time.perf_counter(); import timm; t["import timm"] = time.perf_counter() - s
from pathlib import Path
from harness.registry import load_registry
from harness.sources import DataContext, open_source
from harness.models.loading import load_encoder
from harness.models.model_spec import LoadOptions
s = time.perf_counter(); registry = load_registry(families=tasks.FAMILIES); t["registry"] = time.perf_counter() - s
s = time.perf_counter(); encoder = load_encoder({model!r}, LoadOptions(random_init={model!r}.startswith(("timm:", "hf-hub:")))); t["model build"] = time.perf_counter() - s
spec = registry.tasks[{task!r}]
context = DataContext(cache_dir=Path({str(cache)!r}), data_root=Path({str(cache)!r}) / "data")
s = time.perf_counter()
source = open_source(spec.dataset, registry.datasets[spec.dataset], context, registry.datasets)
source.prepare(); source.fingerprint()
t["fingerprint"] = time.perf_counter() - s
print(json.dumps(t))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env=dict(os.environ, HARNESS_CACHE=str(cache)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="timm:vit_tiny_patch16_224")
    parser.add_argument("--task", default="synth-retrieval")
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "results"
        untrained = ["--random-init"] if args.model.startswith(("timm:", "hf-hub:")) else []  # no Hub here
        command = [*HARNESS, "run", "--model", args.model, *untrained, "--tasks", args.task,
                   "--cache-dir", str(cache), "--output", str(out), "--overwrite"]
        cold = wall(command, env)
        warm = min(wall(command, env) for _ in range(2))
        interpreter = min(wall([sys.executable, "-c", "pass"], env) for _ in range(3))
        phases = in_process_phases(args.model, args.task, cache)
        [result_file] = list(out.glob(f"*/{args.task}.json"))
        evaluation = json.loads(result_file.read_text())["timings"]["eval_s"]
    print(f"{args.model} on {args.task} (embeddings cached after the cold run; timm and Hub names random-init)")
    print(f"cold run                          {cold:6.2f} s")
    print(f"warm run                          {warm:6.2f} s  (best of 2)")
    print(f"  interpreter start               {interpreter:6.2f} s")
    for name, seconds in phases.items():
        print(f"  {name:<31} {seconds:6.2f} s")
    print(f"  evaluation (eval_s)             {evaluation:6.2f} s")
    rest = warm - interpreter - sum(phases.values()) - evaluation
    print(f"  rest (cache reads, writing, table) {rest:4.2f} s")


if __name__ == "__main__":
    main()
