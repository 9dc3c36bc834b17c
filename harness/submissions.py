"""The submission queue for model authors (like the Open LLM Leaderboard's requests).

`harness submit CHECKPOINT --card card.yaml` validates a checkpoint and files a request;
`harness queue run` scores pending requests one at a time. The store is a folder:

  <store>/requests/<id>.json        one request: status PENDING -> RUNNING -> FINISHED | FAILED
  <store>/checkpoints/<id>/         the submitted weights + card, copied (the request scores these)
  <store>/locks/<id>.lock           held while a process scores the request

Validation loads the weights the way a run does (safetensors, or torch.load(weights_only=True);
never unpickled), with the card's architecture and strict key matching, then runs a forward pass
that must give finite outputs of the card's declared embed_dim. A request whose weights sha256
is already pending, running or finished is refused: the same weights are never scored twice.

A killed `queue run` leaves its request RUNNING with no lock held (the OS drops the lock with
the process); the next `queue run` sees that and retries it. Results are written atomically and
embeddings resume from their last shard, so a retry loses nothing and half-writes nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from harness.atomic_write import write_text_atomic
from harness.errors import HarnessError
from harness.timestamps import utc_timestamp

Status = Literal["PENDING", "RUNNING", "FINISHED", "FAILED"]
ACTIVE = ("PENDING", "RUNNING", "FINISHED")  # a request in one of these holds its weights' sha256


class Request(BaseModel):
    id: str
    status: Status
    model_name: str
    weights_sha256: str | None = None  # local submissions: checked at submit; Hub ones: the backend's download
    embed_dim: int | None = None
    n_parameters: int | None = None
    tasks: str  # the --tasks expression it is scored on
    submitted: str
    updated: str
    attempts: int = 0
    reason: str | None = None  # why it FAILED
    results: dict[str, str] = {}  # task -> status, once scored
    # Hub submissions (harness/hub_queue.py)
    hub_id: str | None = None  # ORG/MODEL
    revision: str | None = None  # what the author asked for (a branch, tag or sha)
    commit_sha: str | None = None  # that revision resolved at submit time: what is scored
    card: dict | None = None  # the model card (the repo's card.yaml, or {base: <known model>})
    claimed_by: str | None = None  # the backend scoring it (RUNNING)


class RequestStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def request_path(self, request_id: str) -> Path:
        return self.root / "requests" / f"{request_id}.json"

    def checkpoint_dir(self, request_id: str) -> Path:
        return self.root / "checkpoints" / request_id

    def lock(self, request_id: str) -> FileLock:
        path = self.root / "locks" / f"{request_id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    def save(self, request: Request) -> None:
        request.updated = utc_timestamp()
        write_text_atomic(self.request_path(request.id), request.model_dump_json(indent=2) + "\n")

    def all(self) -> tuple[list[Request], list[str]]:
        """Requests in submission order, and one warning per unreadable request file."""
        requests, warnings = [], []
        for path in sorted((self.root / "requests").glob("*.json")):
            try:
                requests.append(Request.model_validate(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, ValidationError) as error:
                warnings.append(f"{path}: skipped, not a valid request ({str(error).splitlines()[0][:100]})")
        return sorted(requests, key=lambda r: (r.submitted, r.id)), warnings


def submit(checkpoint: Path, card: Path, store: RequestStore, tasks: str) -> Request:
    """Validate the checkpoint and file a PENDING request (the checkpoint is copied into the store)."""
    from harness.models.checkpoint import find_weights, sha256_file
    from harness.models.encoder import model_slug

    checkpoint, card = Path(checkpoint), Path(card)
    if not card.is_file():
        raise HarnessError(f"{card}: model card not found; write one with architecture, pooling and embed_dim")
    weights = find_weights(checkpoint)
    sha256 = sha256_file(weights)
    requests, _ = store.all()
    for earlier in requests:
        if earlier.weights_sha256 == sha256 and earlier.status in ACTIVE:
            raise HarnessError(f"{weights}: these weights (sha256 {sha256[:12]}) were already submitted as "
                               f"'{earlier.id}' ({earlier.status}); they are not scored twice")
    with tempfile.TemporaryDirectory(dir=_mkdir(store.root)) as staging:
        staged = Path(staging) / "checkpoint"
        staged.mkdir()
        shutil.copyfile(weights, staged / weights.name)
        shutil.copyfile(card, staged / "card.yaml")
        try:
            encoder = validate_checkpoint(staged, sha256)  # a copy of the file just hashed: not hashed again
        except HarnessError as error:  # name the author's files, not the staging copy that is about to go
            message = str(error).replace(str(staged / weights.name), str(weights))
            raise HarnessError(message.replace(str(staged / "card.yaml"), str(card)).replace(str(staged), str(checkpoint))
                               ) from None
        request_id = f"{model_slug(encoder.card.name or weights.stem)}-{sha256[:12]}"
        target = store.checkpoint_dir(request_id)
        if target.exists():
            shutil.rmtree(target)  # left by a FAILED submission of the same weights
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
    request = Request(id=request_id, status="PENDING", model_name=encoder.card.name or str(target),
                      weights_sha256=sha256, embed_dim=encoder.info.embed_dim,
                      n_parameters=encoder.info.n_parameters, tasks=tasks, submitted=utc_timestamp(), updated=utc_timestamp())
    store.save(request)
    return request


def validate_checkpoint(folder: Path, sha256: str | None = None):
    """Load as a run would, then one forward pass: finite outputs of the declared dim. `sha256`: the
    weights file's hash when the caller has taken it (a checkpoint can be gigabytes)."""
    import dataclasses

    import torch

    from harness.models.loading import load_encoder
    from harness.models.model_spec import LoadOptions, resolve_model

    # the layout and card rules a run applies; the hash, when given, is not taken again
    model = dataclasses.replace(resolve_model(str(folder)), known_sha256=sha256)
    if model.card.embed_dim is None:
        raise HarnessError(f"{model.card_path}: a submission must declare embed_dim (the dimension of its embedding)")
    encoder = load_encoder(model, LoadOptions(device="cpu"))
    size = encoder.transform.input_size
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = encoder.module(encoder.transform.normalise(images))
    if out.ndim != 2 or out.shape[1] != encoder.card.embed_dim:
        raise HarnessError(f"{folder}: a forward pass gave shape {tuple(out.shape)}, not (batch, "
                           f"{encoder.card.embed_dim}) as the card declares")
    if not torch.isfinite(out).all():
        raise HarnessError(f"{folder}: a forward pass gave NaN or inf embeddings; check the weights and card")
    return encoder


def run_queue(store: RequestStore, score: Callable[[Request, Path], dict[str, tuple[str, str | None]]],
              log: Callable[[str], None] = print) -> list[Request]:
    """Score every PENDING request, and every RUNNING one no process holds (a killed run), in
    submission order. `score(request, checkpoint_dir)` -> task -> (status, reason)."""
    requests, warnings = store.all()
    for warning in warnings:
        log(f"warning: {warning}")
    done = []
    for request in requests:
        if request.status in ("FINISHED", "FAILED"):
            continue
        lock = store.lock(request.id)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"{request.id}: being scored by another process; skipped")
            continue
        try:
            request = Request.model_validate_json(store.request_path(request.id).read_text())  # fresh, under the lock
            if request.status in ("FINISHED", "FAILED"):
                continue
            if request.status == "RUNNING":
                log(f"{request.id}: an earlier run stopped while scoring it; retrying")
            request.status, request.attempts = "RUNNING", request.attempts + 1
            store.save(request)
            try:
                outcome = score(request, store.checkpoint_dir(request.id))
            except HarnessError as error:
                outcome = {"*": ("failed", str(error))}
            request.results = {task: status for task, (status, _) in outcome.items()}
            failed = {task: reason for task, (status, reason) in outcome.items() if status == "failed"}
            request.status = "FAILED" if failed else "FINISHED"
            request.reason = "; ".join(f"{t}: {r}" for t, r in failed.items()) or None
            store.save(request)
            log(f"{request.id}: {request.status}" + (f" ({request.reason})" if request.reason else ""))
            done.append(request)
        finally:
            lock.release()
    return done


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def queue_table(requests_repo: str | None, folder: str | Path | None) -> list[dict]:
    """The queue as rows for a table (the app's Queue tab): a Hub requests dataset, or a folder."""
    if requests_repo:
        from harness.hub_queue import HubRequestStore

        _, requests = HubRequestStore(requests_repo).snapshot()
    else:
        requests, _ = RequestStore(Path(folder)).all()
    return [{"model": r.hub_id or r.model_name, "revision": (r.commit_sha or "")[:12] or None, "status": r.status,
             "tasks": r.tasks, "submitted": r.submitted, "updated": r.updated, "attempts": r.attempts,
             "reason": r.reason or ""} for r in sorted(requests, key=lambda r: (r.submitted, r.id))]
