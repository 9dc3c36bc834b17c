"""A rerun of a local checkpoint whose results are all there: what the weights digest cache saves.

Results record the sha256 of a checkpoint's weights, and a rerun compares it with each result's to
reuse them. The digest is kept per state of the file (harness/models/weights_digest.py); without
it every start read the whole weights file. This script writes a random-init checkpoint (default
ViT-L, UNI's architecture: 1.2 GB of safetensors), scores it once on a tiny task, then times the
same command in fresh processes, three times each way (--repeats):
  cached     the digest read from <cache>/weights-sha256/ (the harness)
  hashed     that folder removed before each run, so the weights are read and hashed again
             (what every rerun did before the cache)
and prints the slowest of each, their ratio, and whether the rerun imported torch (it should not:
finding a checkpoint's files is torch-free).

Usage: python benchmarks/checkpoint_rerun.py [--architecture vit_large_patch16_224] [--workdir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# a task small enough that scoring a ViT-L once takes seconds: 9 tiles of 64 px per class
REGISTRY = {
    "datasets": {"rerun-tiles": {"source": "synth", "generator": "tiles",
                                 "params": {"tile_size": 64, "per_class": {"train": 4, "val": 2, "test": 3}, "seed": 5}}},
    "tasks": {"rerun-retrieval": {"family": "retrieval", "dataset": "rerun-tiles", "main_score": "map@5",
                                  "params": {"bootstrap_resamples": 100}}},
}

PROBE = """
import sys
from harness.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def write_checkpoint(folder: Path, architecture: str) -> int:
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model(architecture, num_classes=0).state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "card.yaml").write_text(f"name: bench/{architecture}\narchitecture: {architecture}\npooling: cls\n")
    return (folder / "model.safetensors").stat().st_size


def timed(argv: list[str], env: dict) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"harness run exited {done.returncode}: {done.stderr.strip()[-400:]}")
    if "earlier result" not in done.stdout:
        raise SystemExit("the rerun did not reuse its result: nothing to time")
    return elapsed, "torch imported: True" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="vit_large_patch16_224")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs timed each way, 1-20 (default 3; the slowest is printed)")
    args = parser.parse_args()
    if not 1 <= args.repeats <= 20:
        parser.error(f"--repeats: {args.repeats} is not between 1 and 20")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="checkpoint-rerun-"))
    cache, registry = work / "cache", work / "rerun.yaml"
    registry.write_text(yaml.safe_dump(REGISTRY))
    size = write_checkpoint(work / "checkpoint", args.architecture)
    argv = ["run", "--model", str(work / "checkpoint"), "--tasks", "rerun-retrieval", "--include", str(registry),
            "--cache-dir", str(cache), "--output", str(work / "results")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HARNESS_CACHE=str(cache))
    subprocess.run([sys.executable, "-m", "harness.cli", *argv], env=env, check=True, capture_output=True)
    cached = [timed(argv, env) for _ in range(args.repeats)]
    hashed = []
    for _ in range(args.repeats):
        shutil.rmtree(cache / "weights-sha256", ignore_errors=True)
        hashed.append(timed(argv, env))
    slow_cached, slow_hashed = max(t for t, _ in cached), max(t for t, _ in hashed)
    print(f"checkpoint  {args.architecture}, {size / 1e9:.2f} GB of safetensors")
    print(f"cached      {slow_cached:.2f} s  (the slowest of {', '.join(f'{t:.2f}' for t, _ in cached)} s)")
    print(f"hashed      {slow_hashed:.2f} s  (the slowest of {', '.join(f'{t:.2f}' for t, _ in hashed)} s)")
    print(f"ratio       {slow_hashed / slow_cached:.2f}  (hashed / cached)")
    print(f"torch       imported by a rerun: {any(flag for _, flag in cached + hashed)}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
