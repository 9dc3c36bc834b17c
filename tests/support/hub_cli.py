"""The `harness` command against the Hub stand-in: its environment (HF_ENDPOINT, a token) and a runner."""

import os
import subprocess
import sys
from pathlib import Path

TOKEN = "hf_standin_secret_4242"
HARNESS = str(Path(sys.executable).parent / "harness")
# the head of a script run against the stand-in: commits the request files of the JSON file argv[1]
# ({name: content}) in one commit
FILE_REQUESTS = """
import json, sys
from datetime import timedelta
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi
import harness.hub_queue as hub_queue
from harness.hub_queue import HubRequestStore, run_hub_queue
api = HfApi()
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
ops = [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode())
       for name, data in json.loads(Path(sys.argv[1]).read_text()).items()]
api.create_commit("lab/requests", ops, commit_message="requests", repo_type="dataset")
"""


def hub_env(hub, tmp_path, token=TOKEN) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def harness(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([HARNESS, *args], env=env, capture_output=True, text=True, timeout=120)
