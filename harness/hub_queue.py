"""Submissions on the Hugging Face Hub (the Open LLM Leaderboard pattern).

A model author runs `harness submit hf-hub:ORG/MODEL --revision REV --requests-repo ORG/REQUESTS`.
The submission is checked against the Hub, then written as one request file into a Hub dataset:

  requests/<org>--<model>--<sha12>.json      status PENDING -> RUNNING -> FINISHED | FAILED

A backend (`harness queue run --requests-repo ... --results-repo ...`) takes PENDING requests
oldest first. It claims one by a commit whose `parent_commit` is the head it read: if another
backend committed in between, the Hub refuses the commit (HTTP 412), so two backends never
score the same request. It downloads the weights at the pinned commit, scores them as a local
checkpoint, pushes the results, and marks the request FINISHED or FAILED with the reason.
A backend killed mid-request finds its own RUNNING claim on the next start and resumes it
(embeddings and result files already written are kept); another backend's claim is left alone
until it is older than the lease.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import yaml

from harness.errors import HarnessError
from harness.hub_access import hub_api, hub_call, hub_error
from harness.submissions import ACTIVE, Request
from harness.timestamps import parse_timestamp, utc_timestamp

PREFIX = "requests"
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class ClaimConflict(Exception):
    """The requests dataset moved since it was read (another backend or submitter committed)."""



class HubRequestStore:
    """The requests dataset: read at one commit, written with that commit as parent."""

    def __init__(self, repo_id: str):
        self.repo_id = repo_id

    def snapshot(self) -> tuple[str | None, list[Request]]:
        """(head commit, requests at it); (None, []) for a dataset that has no commit yet."""
        from huggingface_hub import snapshot_download

        info = hub_call("reading the requests", self.repo_id,
                        lambda: hub_api().repo_info(self.repo_id, repo_type="dataset"))
        if not info.sha or set(info.sha) == {"0"}:
            return None, []
        folder = Path(hub_call("reading the requests", self.repo_id, lambda: snapshot_download(
            self.repo_id, repo_type="dataset", revision=info.sha, allow_patterns=[f"{PREFIX}/*.json"])))
        requests = []
        for path in sorted((folder / PREFIX).glob("*.json")):
            try:
                requests.append(Request.model_validate_json(path.read_text(encoding="utf-8")))
            except ValueError:
                continue  # not a request file: never scored, never fatal
        return info.sha, sorted(requests, key=lambda r: (r.submitted, r.id))

    def write(self, request: Request, parent: str | None, message: str) -> None:
        """Commit one request file on top of `parent`; ClaimConflict if the head has moved."""
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import HfHubHTTPError

        request.updated = utc_timestamp()
        data = (request.model_dump_json(indent=2) + "\n").encode()
        operation = CommitOperationAdd(path_in_repo=f"{PREFIX}/{request.id}.json", path_or_fileobj=data)
        try:
            hub_api().create_commit(self.repo_id, [operation], commit_message=message, repo_type="dataset",
                                 parent_commit=parent)
        except HfHubHTTPError as error:
            if error.response is not None and error.response.status_code == 412:
                raise ClaimConflict(self.repo_id) from None
            raise hub_error("writing the request", self.repo_id, error) from None

    def update(self, request: Request, message: str, attempts: int = 5) -> None:
        """Write the request on the current head, re-reading if another commit slipped in."""
        for _ in range(attempts):
            head, _ = self.snapshot()
            try:
                return self.write(request, head, message)
            except ClaimConflict:
                continue
        raise HarnessError(f"{self.repo_id}: could not update request {request.id}: the dataset kept changing")


def request_id(hub_id: str, sha: str) -> str:
    return f"{hub_id.replace('/', '--')}--{sha[:12]}"


def submit_from_hub(hub_id: str, revision: str | None, store: HubRequestStore, tasks: str) -> Request:
    """Check a Hub model (repo, revision, safetensors weights, card) and file a PENDING request."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RevisionNotFoundError

    from harness.models.card import read_card
    from harness.models.zoo import find_known_model

    api = hub_api()
    try:
        info = api.model_info(hub_id, revision=revision)
    except RevisionNotFoundError:
        raise HarnessError(f"hf-hub:{hub_id}: revision '{revision}' not found: give a branch, tag or commit "
                           "sha that exists in the model repository") from None
    except Exception as error:  # noqa: BLE001 - one line, as every Hub failure
        raise hub_error("reading the model", hub_id, error) from None
    sha = info.sha
    files = [s.rfilename for s in info.siblings or []]
    if not any(f.endswith(".safetensors") for f in files):
        pickled = [f for f in files if f.endswith(PICKLED)]
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: no .safetensors weights"
                           + (f" ({pickled[0]} is a pickle format, which is never loaded)" if pickled else "")
                           + ": upload model.safetensors (safetensors.torch.save_file(model.state_dict(), ...))")
    if "card.yaml" in files:
        path = Path(hf_hub_download(hub_id, "card.yaml", revision=sha))
        card = read_card(path).model_dump(exclude_defaults=True)
        if card.get("embed_dim") is None and card.get("base") is None:
            raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: card.yaml must declare embed_dim (or a known base)")
    elif find_known_model(hub_id) is not None:
        card = {"base": find_known_model(hub_id).name}
    else:
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: no card.yaml in the repository and not a known model: add "
                           "card.yaml (architecture, pooling, mean, std, input_size, embed_dim)")
    head, requests = store.snapshot()
    rid = request_id(hub_id, sha)
    for earlier in requests:
        if earlier.hub_id == hub_id and earlier.commit_sha == sha and earlier.status in ACTIVE:
            raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: already submitted as '{earlier.id}' ({earlier.status}); "
                               "a commit is scored once")
    request = Request(id=rid, status="PENDING", model_name=hub_id, hub_id=hub_id, revision=revision or "main",
                      commit_sha=sha, card=card, tasks=tasks, submitted=utc_timestamp(), updated=utc_timestamp())
    try:
        store.write(request, head, f"submit {hub_id}@{sha[:12]}")
    except ClaimConflict:
        store.update(request, f"submit {hub_id}@{sha[:12]}")
    return request


def fetch_checkpoint(request: Request, folder: Path) -> Path:
    """The request's weights at its pinned commit, with a card naming the Hub id and commit, as a
    local checkpoint folder (what `harness run --model PATH` and the queue score)."""
    from huggingface_hub import snapshot_download

    downloaded = Path(hub_call("downloading the weights", request.hub_id, lambda: snapshot_download(
        request.hub_id, revision=request.commit_sha, allow_patterns=["*.safetensors"])))
    weights = sorted(downloaded.glob("*.safetensors"))
    if not weights:
        raise HarnessError(f"hf-hub:{request.hub_id}@{request.commit_sha[:12]}: no .safetensors weights at this commit")
    folder.mkdir(parents=True, exist_ok=True)
    preferred = next((w for w in weights if w.name == "model.safetensors"), weights[0])
    target = folder / "model.safetensors"
    if not target.exists():  # copied under another name, then renamed: a kill never leaves half a file
        partial = folder / "model.safetensors.partial"
        shutil.copyfile(preferred, partial)
        partial.replace(target)
    card = dict(request.card or {}, name=request.hub_id, hub_id=request.hub_id, revision=request.commit_sha)
    (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return folder


def _stale(request: Request, lease: timedelta) -> bool:
    try:
        return datetime.now(timezone.utc) - parse_timestamp(request.updated) > lease
    except ValueError:
        return True


def run_hub_queue(store: HubRequestStore, backend: str, workdir: Path,
                  score: Callable[[Request, Path], dict[str, tuple[str, str | None]]],
                  publish: Callable[[Request], None], lease: timedelta = timedelta(hours=24),
                  log: Callable[[str], None] = print) -> list[Request]:
    """Score requests until none is left: this backend's own RUNNING claims first (a restart after
    a kill), then PENDING oldest first (and RUNNING claims older than the lease). `score(request,
    checkpoint_dir)` -> task -> (status, reason); `publish(request)` pushes its results."""
    done: list[Request] = []
    seen: set[str] = set()
    while True:
        head, requests = store.snapshot()
        mine = [r for r in requests if r.status == "RUNNING" and r.claimed_by == backend and r.id not in seen]
        pending = [r for r in requests if r.id not in seen and (
            r.status == "PENDING" or (r.status == "RUNNING" and r.claimed_by != backend and _stale(r, lease)))]
        if not mine and not pending:
            return done
        request = (mine or pending)[0]
        if request.status == "RUNNING":
            log(f"{request.id}: resuming (claimed by {request.claimed_by}, attempt {request.attempts})")
        request.status, request.claimed_by, request.attempts = "RUNNING", backend, request.attempts + 1
        try:
            store.write(request, head, f"claim {request.id} ({backend})")
        except ClaimConflict:
            log(f"{request.id}: the queue changed while claiming; reading it again")
            continue
        seen.add(request.id)
        log(f"{request.id}: RUNNING on {backend}")
        try:
            checkpoint = fetch_checkpoint(request, workdir / "checkpoints" / request.id)
            outcome = score(request, checkpoint)
            request.results = {task: status for task, (status, _) in outcome.items()}
            failed = {task: reason for task, (status, reason) in outcome.items() if status == "failed"}
            if any(status != "failed" for status, _ in outcome.values()):
                publish(request)
        except HarnessError as error:
            failed = {"*": str(error)}
        request.status = "FAILED" if failed else "FINISHED"
        request.reason = "; ".join(f"{t}: {r}" for t, r in failed.items()) or None
        store.update(request, f"{request.status.lower()} {request.id}")
        log(f"{request.id}: {request.status}" + (f" ({request.reason})" if request.reason else ""))
        done.append(request)
