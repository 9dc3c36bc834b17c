"""The `harness` command against the Hub stand-in: its environment (HF_ENDPOINT, a token) and a runner."""

import os
import subprocess
import sys
from pathlib import Path

TOKEN = "hf_standin_secret_4242"
HARNESS = str(Path(sys.executable).parent / "harness")


def hub_env(hub, tmp_path, token=TOKEN) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def harness(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([HARNESS, *args], env=env, capture_output=True, text=True, timeout=120)
