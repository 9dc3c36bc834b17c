"""Filing a request in the Hub queue, against the Hub stand-in with the real huggingface_hub client
(in subprocesses, as a user's process would): a race with a backend's claim, a pull request's ref."""

import hashlib
import json
import subprocess
import sys

from harness.submissions import Request, request_id
from tests.support.hub_cli import TOKEN, harness, hub_env
from tests.support.hub_standin import HubStandIn, Repo

CARD = b"name: lab/fm\narchitecture: vit_tiny_patch16_224\npooling: cls\nembed_dim: 192\n"


def seed_repo(hub: HubStandIn, repo_type: str, repo_id: str, commits: list[dict[str, bytes]]) -> list[str]:
    """A repository whose history is `commits` (each the files it leaves), dated by the stand-in."""
    repo = Repo(repo_type, private=False)
    for i, files in enumerate(commits):
        sha = hashlib.sha1(f"{repo_id}-{i}".encode()).hexdigest()
        repo.files = dict(files)
        repo.commits.append(sha)
        repo.snapshots[sha] = dict(files)
        repo.last_commits[sha] = {name: {"id": sha, "title": "upload", "date": f"2026-11-2{i}T00:00:00.000Z"}
                                  for name in files}
    hub.repos[(repo_type, repo_id)] = repo
    return repo.commits


RACE = """
import sys
from harness.hub_queue import HubRequestStore, submit_from_hub

class Racing(HubRequestStore):
    raced = False

    def write(self, request, parent, message):
        if not self.raced:  # a backend claims this very request between the submitter's read and write
            self.raced = True
            head, requests, _ = self.snapshot()
            [mine] = [r for r in requests if r.id == request.id]
            mine.status, mine.claimed_by = "RUNNING", "backend-a"
            HubRequestStore.write(self, mine, head, "claim")
        return HubRequestStore.write(self, request, parent, message)

try:
    submit_from_hub("lab/fm", "main", Racing("board/requests"), "all")
    print("filed")
except Exception as error:
    print("refused:", error)
"""


def test_a_submission_racing_a_claim_does_not_write_the_request_back_to_pending(tmp_path):
    """A request FAILED earlier may be submitted again; if a backend claims it between the
    submitter's read of the queue and its write, the write is refused (412) and the queue read and
    checked again: the request is now RUNNING, so the submission is refused, and the claim stays.
    (The write used to be retried blindly on the new head, setting a running request back to
    PENDING, where a second backend would score it again.)"""
    with HubStandIn(token=TOKEN) as hub:
        [sha] = seed_repo(hub, "model", "lab/fm", [{"model.safetensors": b"w", "card.yaml": CARD}])
        failed = Request(id=request_id("lab/fm", sha), status="FAILED", model_name="lab/fm", hub_id="lab/fm",
                         commit_sha=sha, revision="main", tasks="all", submitted="2026-12-01T00:00:00Z",
                         updated="2026-12-01T00:00:00Z", reason="out of memory")
        path = f"requests/{failed.id}.json"
        seed_repo(hub, "dataset", "board/requests", [{path: failed.model_dump_json().encode()}])
        done = subprocess.run([sys.executable, "-c", RACE], env=hub_env(hub, tmp_path), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        request = json.loads(hub.repos[("dataset", "board/requests")].files[path])
    assert done.stdout.startswith("refused:") and "already submitted" in done.stdout and "RUNNING" in done.stdout
    assert request["status"] == "RUNNING" and request["claimed_by"] == "backend-a"


def test_a_pull_request_ref_is_refused_by_the_cli_too(tmp_path):
    with HubStandIn(token=TOKEN) as hub:
        seed_repo(hub, "dataset", "board/requests", [{"README.md": b"# requests\n"}])
        done = harness(hub_env(hub, tmp_path), "submit", "hf-hub:lab/fm", "--revision", "refs/pr/3", "--requests-repo",
                       "board/requests")
        asked = [path for _, path, _ in hub.log]
    assert done.returncode == 2 and "is a pull request, which anyone may open" in done.stderr
    assert not [path for path in asked if "lab/fm" in path]
