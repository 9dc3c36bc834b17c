#!/usr/bin/env bash
# The wheels a bare GPU machine (Python 3.12, PyTorch, timm, numpy, scipy, scikit-learn, pandas,
# rich, tifffile already there; no network) needs for benchmarks/gpu_check.py (monai: the
# segmentation part's Dice loss), downloaded here into .whl/ (keep it out of git: echo /.whl/ >>
# .git/info/exclude). The versions are the ones this project's CI installs. On the GPU machine
# (carry: [".whl"]), from the repository root (the links put tasks/, distillers/ and leaderboard/
# where the wheel maps them: harness.tasks, ...):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && for p in tasks distillers leaderboard; do ln -sfn ../$p harness/$p; done \
#     && PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json
# The working tree that travels there is limited to 64 MiB: imagecodecs' wheel alone is 26 MB, so
# leave tests/assets/capricorn-densenet121/model.safetensors (14 MB) behind for that call.
set -euo pipefail
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  openslide-python==1.4.7 openslide-bin==4.0.1.2 imagecodecs==2026.3.6 monai==1.6.1
ls -la .whl
