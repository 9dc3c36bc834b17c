"""The public leaderboard loop against the loopback Hub stand-in, with the real huggingface_hub
client in every step: an author's model repo -> `harness submit hf-hub:` -> `harness queue run`
(claimed, killed, resumed) -> results pushed -> `harness push --space` -> the app reading the
results dataset shows the model.

Every Hub call runs in a subprocess, so huggingface_hub reads HF_ENDPOINT at import as it would
for a user (the test process itself is offline: conftest sets HF_HUB_OFFLINE=1).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import save_file

from tests.support.hub_standin import HubStandIn
from tests.support.hub_cli import TOKEN, harness, hub_env
from tests.support.checkpoints import CARD

HARNESS = str(Path(sys.executable).parent / "harness")


@pytest.fixture
def hub():
    with HubStandIn(token=TOKEN) as server:
        yield server


def hub_python(env: dict, code: str, *args: str) -> str:
    """Run `code` with huggingface_hub configured as a user's would be (env); its stdout."""
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


UPLOAD = """
import sys
from huggingface_hub import HfApi
api = HfApi()
repo, folder, repo_type = sys.argv[1], sys.argv[2], sys.argv[3]
api.create_repo(repo, repo_type=repo_type, exist_ok=True)
print(api.upload_folder(repo_id=repo, folder_path=folder, repo_type=repo_type, commit_message="upload").oid)
"""

CLAIM_RACE = """
import sys
from harness.hub_queue import ClaimConflict, HubRequestStore
store = HubRequestStore(sys.argv[1])
head, [request], _ = store.snapshot()
request.status, request.claimed_by = "RUNNING", "backend-a"
store.write(request, head, "claim by a")
request.claimed_by = "backend-b"
try:
    store.write(request, head, "claim by b")   # read the same head: must be refused
    print("both claims accepted")
except ClaimConflict:
    print("second claim refused")
"""


def request_file(hub: HubStandIn, repo: str = "lab/requests") -> dict:
    files = hub.repos[("dataset", repo)].files
    [name] = [n for n in files if n.startswith("requests/")]
    return json.loads(files[name])


def model_repo(env, tmp_path, tiny_fm_state, name="lab/tiny-fm", card=CARD, weights_name="model.safetensors",
               config: dict | None = None) -> str:
    folder = tmp_path / name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tiny_fm_state, str(folder / weights_name))
    if card:
        (folder / "card.yaml").write_text(card)
    if config:  # timm's config.json, as push_to_hub writes it
        (folder / "config.json").write_text(json.dumps(config))
    return hub_python(env, UPLOAD, name, str(folder), "model").strip()


def test_submit_queue_push_space_and_app(hub, tmp_path, tiny_fm_state, tiny_registry_file):
    env = hub_env(hub, tmp_path)
    (tmp_path / "queue-readme").mkdir()
    (tmp_path / "queue-readme" / "README.md").write_text("---\ntags: [requests]\n---\n# requests\n")
    hub_python(env, UPLOAD, "lab/requests", str(tmp_path / "queue-readme"), "dataset")
    pinned = model_repo(env, tmp_path, tiny_fm_state)
    registry = ["--include", str(tiny_registry_file)]

    # --- submit: checked against the Hub before anything is queued -------------------------
    done = harness(env, "submit", "hf-hub:lab/tiny-fm", "--revision", "no-such-branch", "--requests-repo",
                   "lab/requests", "--tasks", "tiny-tiles", *registry)
    assert done.returncode == 2 and "revision 'no-such-branch' not found" in done.stderr
    model_repo(env, tmp_path, tiny_fm_state, name="lab/pickled", weights_name="pytorch_model.bin")
    done = harness(env, "submit", "hf-hub:lab/pickled", "--requests-repo", "lab/requests", "--tasks", "tiny-tiles",
                   *registry)
    assert done.returncode == 2 and "no .safetensors weights" in done.stderr and "pytorch_model.bin" in done.stderr
    model_repo(env, tmp_path, tiny_fm_state, name="lab/no-card", card=None)
    done = harness(env, "submit", "hf-hub:lab/no-card", "--requests-repo", "lab/requests", "--tasks", "tiny-tiles",
                   *registry)
    assert done.returncode == 2 and "no card.yaml" in done.stderr and "config.json" not in done.stderr
    model_repo(env, tmp_path, tiny_fm_state, name="lab/timm-pushed", card=None, config={
        "architecture": "vit_tiny_patch16_224", "num_features": 192, "model_args": {"global_pool": "avg"},
        "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "input_size": [3, 224, 224]}})
    done = harness(env, "submit", "hf-hub:lab/timm-pushed", "--requests-repo", "lab/requests", "--tasks",
                   "tiny-tiles", *registry)
    assert done.returncode == 2 and "no card.yaml in the repository" in done.stderr
    assert ("e.g. from that config {architecture: vit_tiny_patch16_224, timm_kwargs: {}, mean: [0.5, 0.5, 0.5], std: "
            "[0.5, 0.5, 0.5], input_size: 224, pooling: mean-patch, embed_dim: 192}") in " ".join(done.stderr.split())
    done = harness(env, "submit", "hf-hub:lab/tiny-fm", "--requests-repo", "lab/requests", "--tasks", "no-such-task",
                   *registry)
    assert done.returncode == 2 and "no-such-task" in done.stderr
    assert not [n for n in hub.repos[("dataset", "lab/requests")].files if n.startswith("requests/")]

    done = harness(env, "submit", "hf-hub:lab/tiny-fm", "--revision", "main", "--requests-repo", "lab/requests",
                   "--tasks", "tiny-tiles", *registry)
    assert done.returncode == 0, done.stderr
    request = request_file(hub)
    assert request["status"] == "PENDING" and request["commit_sha"] == pinned and request["revision"] == "main"
    assert request["card"] is None and request["tasks"] == "tiny-tiles"  # the card is read from the repo at the commit
    again = harness(env, "submit", "hf-hub:lab/tiny-fm", "--requests-repo", "lab/requests", "--tasks", "tiny-tiles",
                    *registry)
    assert again.returncode == 2 and "already submitted" in again.stderr

    # the author pushes other weights to main afterwards: the request still scores the pinned commit
    first_weights = hub.repos[("model", "lab/tiny-fm")].snapshots[pinned]["model.safetensors"]
    changed = {k: v + 1.0 if k == "norm.weight" else v for k, v in tiny_fm_state.items()}
    model_repo(env, tmp_path / "v2", changed)
    assert hub.repos[("model", "lab/tiny-fm")].files["model.safetensors"] != first_weights

    # --- two backends read the same head: the second claim is refused -----------------------
    assert hub_python(env, CLAIM_RACE, "lab/requests").strip() == "second claim refused"
    assert request_file(hub)["claimed_by"] == "backend-a"
    # backend-a "died" just now (its lease is fresh): backend-b leaves the request alone
    out, cache, work = tmp_path / "results", tmp_path / "cache", tmp_path / "work"
    backend = ["queue", "run", "--requests-repo", "lab/requests", "--results-repo", "lab/results", "--output",
               str(out), "--cache-dir", str(cache), "--workdir", str(work), *registry]
    done = harness(env, *backend, "--backend-id", "backend-b")
    assert done.returncode == 0, done.stderr
    assert request_file(hub)["status"] == "RUNNING" and request_file(hub)["claimed_by"] == "backend-a"

    # --- backend-a restarts, is killed while scoring, and resumes on the next start -----------
    first = subprocess.Popen([HARNESS, *backend, "--backend-id", "backend-a"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and request_file(hub)["attempts"] < 1:
        time.sleep(0.1)
    claimed = request_file(hub)["id"]
    # killed while it extracts: once the request's own folder is there (not only work/embeddings, which
    # mkdir(parents=True) makes a moment before it: a kill in between, on a busy machine, left no folder)
    while time.time() < deadline and not (work / "embeddings" / claimed).exists():
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert request_file(hub)["status"] == "RUNNING"
    assert (work / "embeddings" / claimed).is_dir()  # the request's own folder, kept for the resume

    done = harness(env, *backend, "--backend-id", "backend-a")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming" in done.stdout + done.stderr
    request = request_file(hub)
    assert request["status"] == "FINISHED" and request["results"] == {"tiny-tiles": "ok"}
    assert request["attempts"] == 2 and request["reason"] is None
    # scored once, its weights are not kept: not in the work folder, and never in huggingface_hub's cache
    assert not (work / "checkpoints" / request["id"]).exists()
    assert not list((tmp_path / "hf-home").rglob("*.safetensors"))
    # nor its embeddings: computed in the request's folder (never the shared cache), removed with it
    assert not (work / "embeddings" / request["id"]).exists()
    assert not list(cache.glob("embeddings/*/meta.json"))

    # --- results on the Hub: the pinned weights, recorded with their Hub id and commit ----------
    results = hub.repos[("dataset", "lab/results")].files
    result = json.loads(results["results/lab--tiny-fm/tiny-tiles.json"])
    assert result["model"]["weights_sha256"] == hashlib.sha256(first_weights).hexdigest()
    assert result["model"]["hub_id"] == "lab/tiny-fm" and result["model"]["revision"] == pinned
    assert len(result["main_score"]["replicates"]) == 100  # the tiny task's bootstrap resamples
    assert "leaderboard.parquet" in results

    # --- the board's suite gains a task: a backend on another machine (its own empty --output)
    # scores the finished request again; its result on the Hub is reused, the missing task scored --
    shown = results["results/lab--tiny-fm/tiny-tiles.json"]
    done = harness(env, *backend, "--backend-id", "backend-c", "--output", str(tmp_path / "results-c"),
                   "--tasks", "tiny", "--rescore-stale")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{request['id']}: rescoring (no result of tiny-retrieval)" in done.stdout + done.stderr
    assert results["results/lab--tiny-fm/tiny-tiles.json"] == shown  # reused as published, not scored again
    added = json.loads(results["results/lab--tiny-fm/tiny-retrieval.json"])
    assert added["status"] == "ok" and added["model"]["revision"] == pinned
    request = request_file(hub)
    assert request["status"] == "FINISHED" and request["results"] == {"tiny-tiles": "ok", "tiny-retrieval": "ok"}
    assert request["attempts"] == 1 and request["claimed_by"] == "backend-c"
    assert not (work / "checkpoints" / request["id"]).exists()
    # listed as a run would judge it, from any machine: nothing left to rescore on these tasks, one more
    # (the suite with another version of tiny-tiles) would be
    listing = ["queue", "list", "--requests-repo", "lab/requests", "--results-repo", "lab/results", "--rescore-stale",
               "--workdir", str(tmp_path / "elsewhere")]
    done = harness(env, *listing, "--tasks", "tiny", *registry)
    assert done.returncode == 0 and "rescore" in done.stdout and "computed at version" not in done.stdout, done.stderr
    bumped = tmp_path / "bumped.yaml"
    bumped.write_text(tiny_registry_file.read_text().replace("    family: tile_classification\n",
                                                             "    family: tile_classification\n    version: 2\n", 1))
    done = harness(env, *listing, "--tasks", "tiny", "--include", str(bumped))
    assert done.returncode == 0 and "computed at version 1 of the task" in " ".join(done.stdout.split()), done.stderr
    assert not (tmp_path / "elsewhere").exists()  # a listing writes nothing

    # --- the Space: a Docker Space reading the results and the queue ---------------------------
    source = "pathology-harness @ git+https://example.org/lab/pathology-harness@" + "0" * 40
    done = harness(env, "push", "--space", "lab/board", "--repo", "lab/results", "--requests-repo", "lab/requests",
                   "--source", source, "--tasks", "tiny-tiles", "--submissions", "per_namespace=3", *registry)
    assert done.returncode == 0, done.stderr
    assert "submission form filing into lab/requests" in done.stdout
    space = hub.repos[("space", "lab/board")]
    # its Queue tab files requests with the Space's token, 3 per namespace a week
    assert ('os.environ.setdefault("HARNESS_SUBMISSIONS", "per_namespace=3,period_days=7,waiting=100")'
            in space.files["app.py"].decode())
    # the board declares its tasks (a submission scored on fewer is listed unranked, not narrowing the ranking)
    assert 'os.environ.setdefault("HARNESS_BOARD_TASKS", "tiny-tiles")' in space.files["app.py"].decode()
    assert space.sdk == "docker"
    readme = space.files["README.md"].decode()
    assert "sdk: docker" in readme and "app_port: 8501" in readme and "HF_TOKEN" in readme
    dockerfile = space.files["Dockerfile"].decode()
    assert f'pip install --no-cache-dir --user --no-deps "{source}"' in dockerfile and "EXPOSE 8501" in dockerfile
    requirements = space.files["requirements.txt"].decode().split()
    assert any(r.startswith("streamlit==") for r in requirements)
    assert not any(r.split("==")[0] in ("torch", "timm", "openslide-python", "scikit-survival") for r in requirements)

    # --- the app, run from the Space's own app.py against the Hub, shows the model ----------------
    folder = tmp_path / "space"
    folder.mkdir()
    for name, data in space.files.items():
        (folder / name).write_bytes(data)
    tables = app_tables(env, folder / "app.py")
    [row] = tables["overview"]
    assert row["model"] == "lab/tiny-fm" and row["tiny-tiles"] == pytest.approx(result["main_score"]["value"])
    assert row["average_rank"] == 1.0  # ranked: it has a valid score on every declared task
    [queued] = tables["queue"]
    assert queued["model"] == "lab/tiny-fm" and queued["status"] == "FINISHED" and queued["revision"] == pinned[:12]
    assert TOKEN not in done.stdout + done.stderr


APP_TABLES = """
import json, sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=90)
app.run()
assert not app.exception, app.exception
assert not app.warning and not app.error, [e.value for e in [*app.warning, *app.error]]
queue = next(d.value for d in app.dataframe if "submitted" in d.value.columns)
print(json.dumps({"overview": json.loads(app.dataframe[0].value.to_json(orient="records")),
                  "queue": json.loads(queue.to_json(orient="records"))}))
"""


def app_tables(env, app_file: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", APP_TABLES, str(app_file)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
