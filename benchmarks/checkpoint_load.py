"""What loading a local checkpoint holds in memory: a torch file (`model.pt`, torch.save's zip
format) with its tensors mapped from the file, as the harness reads it (harness/models/checkpoint.py
`load_torch_file`), against the same file read whole (torch.load without mmap, as the harness read
it before), and the same weights as safetensors (which the safetensors library maps already).

Writes one random-init network of --architecture in both formats with a card, then loads each way
with `harness.models.loading.load_encoder` in a fresh process, sampling the process's anonymous
resident memory (RssAnon: what the process holds itself; file pages the kernel can drop and read
again are not counted) every 5 ms. Prints, per way, the seconds, the peak anonymous MB above the
process's own before loading, and the ratio of the whole read's peak to the mapped one's; and checks
that every way loaded the same weights (a hash of the state dict).

Usage: python benchmarks/checkpoint_load.py [--architecture vit_large_patch16_224] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, threading, time

def anon_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("RssAnon:"))

import torch
from harness.models import checkpoint
from harness.models.building import state_dict_sha256
from harness.models.loading import load_encoder

folder, way = sys.argv[1], sys.argv[2]
if way == "torch file, read whole":
    checkpoint.load_torch_file = lambda weights: torch.load(weights, map_location="cpu", weights_only=True)
peak, done = [0.0], [False]

def watch():
    while not done[0]:
        peak[0] = max(peak[0], anon_mb())
        time.sleep(0.005)

before = anon_mb()
threading.Thread(target=watch, daemon=True).start()
started = time.perf_counter()
encoder = load_encoder(folder)
seconds = time.perf_counter() - started
done[0] = True
time.sleep(0.02)
peak[0] = max(peak[0], anon_mb())
print(json.dumps({"seconds": seconds, "peak_mb": peak[0] - before, "after_mb": anon_mb() - before,
                  "parameters": encoder.info.n_parameters,
                  "weights": state_dict_sha256(encoder.module.backbone)}))
"""

WAYS = {  # way -> the folder it loads
    "torch file, mapped (harness)": "pt",
    "torch file, read whole": "pt",
    "safetensors (harness)": "safetensors",
}


def write_checkpoints(root: Path, architecture: str) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model(architecture, num_classes=0).state_dict().items()}
    card = f"architecture: {architecture}\npooling: mean-patch\n"
    for kind in ("pt", "safetensors"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        (root / kind / "card.yaml").write_text(card)
    torch.save(state, root / "pt" / "model.pt")
    save_file(state, str(root / "safetensors" / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="vit_large_patch16_224")
    parser.add_argument("--workdir", help="where the checkpoints are written (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="checkpoint-load-"))
    write_checkpoints(root, args.architecture)
    size = (root / "pt" / "model.pt").stat().st_size / 2**20
    print(f"{args.architecture}: {size:,.0f} MB of weights")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    measured = {}
    for way, kind in WAYS.items():
        done = subprocess.run([sys.executable, "-c", CHILD, str(root / kind), way], capture_output=True, text=True,
                              env=env)
        if done.returncode:
            raise SystemExit(f"{way}: the load failed: {done.stderr[-2000:]}")
        measured[way] = json.loads(done.stdout.strip().splitlines()[-1])
        m = measured[way]
        print(f"{way:30s} {m['seconds']:6.2f} s   peak {m['peak_mb']:8,.0f} MB above the process's own   "
              f"after {m['after_mb']:8,.0f} MB")
    mapped, whole = measured["torch file, mapped (harness)"], measured["torch file, read whole"]
    print(f"torch file: peak read whole / mapped {whole['peak_mb'] / mapped['peak_mb']:.2f}")
    same = len({m["weights"] for m in measured.values()}) == 1
    print(f"same weights every way: {'yes' if same else 'NO'} ({mapped['parameters']:,} parameters)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
