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

import re
import shutil
import tempfile
import traceback
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, NamedTuple

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.atomic_write import write_text_atomic
from harness.bounded_read import read_regular_file
from harness.errors import HarnessError, first_problem, printable
from harness.timestamps import utc_timestamp

if TYPE_CHECKING:
    from harness.rescoring import Rescoring

Status = Literal["PENDING", "RUNNING", "FINISHED", "FAILED"]
ACTIVE = ("PENDING", "RUNNING", "FINISHED")  # a request in one of these holds its weights' sha256
MAX_ATTEMPTS = 3  # a request whose scoring was started this many times and never ended is failed, not retried
MAX_REQUEST_BYTES = 64 * 1024  # a request file is a few hundred bytes; a larger one is refused unread
MAX_TASKS_CHARS = 2000  # of a request's tasks expression (the form writes the board's tasks, comma-separated)
MAX_REASON_CHARS = 500  # of the reason a FAILED request records (an error message can be megabytes)
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # a file name: no separator, no leading dot
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def is_hub_id(value: str) -> bool:
    """ORG/NAME as the Hub spells a repository: no separator beyond the one, no `..`."""
    return bool(HUB_ID.fullmatch(value)) and ".." not in value


class InvalidRequest(ValueError):
    """A request file the queue will not act on; the message says why (one line)."""


class Request(BaseModel):
    """One request file. Everything in it is untrusted (anyone who can write the requests dataset
    can edit it): fields are bounded, the id is a plain file name, and a Hub request is pinned to
    a commit. The backend takes the model card from the model repository at that commit, never
    from here."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=200)
    status: Status
    model_name: str = Field(max_length=300)
    weights_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # local: checked at submit; Hub: the download
    embed_dim: int | None = Field(None, ge=1, le=1_000_000)
    n_parameters: int | None = Field(None, ge=0, le=10**13)
    tasks: str = Field(max_length=MAX_TASKS_CHARS)  # the --tasks expression it is scored on
    submitted: str = Field(max_length=40)
    updated: str = Field(max_length=40)
    attempts: int = Field(0, ge=0, le=1_000_000)
    reason: str | None = Field(None, max_length=4 * MAX_REASON_CHARS)  # why it FAILED
    results: dict[str, str] = Field(default_factory=dict, max_length=1000)  # task -> status, once scored
    # Hub submissions (harness/hub_queue.py)
    hub_id: str | None = Field(None, max_length=200)  # ORG/MODEL
    revision: str | None = Field(None, max_length=200)  # what the author asked for (a branch, tag or sha)
    commit_sha: str | None = Field(None, max_length=40)  # that revision resolved at submit time: what is scored
    card: dict | None = None  # requests filed before 0.1 carried the card; it is never read (see above)
    claimed_by: str | None = Field(None, max_length=200)  # the backend scoring it (RUNNING)

    @field_validator("id")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not REQUEST_ID.fullmatch(value) or ".." in value:
            raise ValueError("must be a plain file name (letters, digits, '.', '_', '-'; no separator, no '..')")
        return value

    @field_validator("hub_id")
    @classmethod
    def _hub_repo(cls, value: str | None) -> str | None:
        if value is not None and not is_hub_id(value):
            raise ValueError("must be ORG/MODEL")
        return value


def parse_request(name: str, data: bytes, hub: bool = False) -> Request:
    """A request file (its name and bytes) -> Request, or InvalidRequest saying in one line why the
    queue will not act on it: too large, not JSON, a field missing, unknown or out of bounds, a
    status other than the four, a file name that is not its id, or a Hub request (`hub`: every
    request of a Hub queue) that names no repository, is not pinned to a commit, or whose id is
    not the one its repository and commit give."""
    if len(data) > MAX_REQUEST_BYTES:
        raise InvalidRequest(f"{len(data):,} bytes, more than a request may have ({MAX_REQUEST_BYTES:,})")
    try:
        request = Request.model_validate_json(data)
    except ValidationError as error:
        loc, message = first_problem(error)
        raise InvalidRequest(f"'{'.'.join(loc) or 'file'}': {message}"[:300]) from None
    if name != f"{request.id}.json":
        raise InvalidRequest(f"the file name is not its id '{request.id}.json'")
    if hub and request.hub_id is None:
        raise InvalidRequest("'hub_id': a request in a Hub queue names its model repository (ORG/MODEL)")
    if request.hub_id is not None:
        if request.commit_sha is None or not COMMIT_SHA.fullmatch(request.commit_sha):
            raise InvalidRequest("not pinned: 'commit_sha' must be the 40-character commit the submission resolved")
        if request.id != request_id(request.hub_id, request.commit_sha):
            raise InvalidRequest(f"the id is not '{request_id(request.hub_id, request.commit_sha)}', the one its "
                                 "repository and commit give")
    return request


def request_id(hub_id: str, sha: str) -> str:
    """A Hub request's id (and file name): its repository and the first 12 characters of its commit."""
    return f"{hub_id.replace('/', '--')}--{sha[:12]}"


def outcome_of(request: Request, score: Callable[[], dict[str, tuple[str, str | None]]],
               log: Callable[[str], None]) -> None:
    """Score one request and record the outcome on it (status, results, reason). Whatever the
    scoring raises ends this request FAILED with one line; the traceback goes to the log, and the
    queue goes on with the next request."""
    try:
        outcome = score()
    except HarnessError as error:
        outcome = {"*": ("failed", str(error))}
    except Exception as error:  # noqa: BLE001 - a request must never stop the queue
        log(f"{request.id}: scoring raised\n{traceback.format_exc()}")
        first = (str(error).strip().splitlines() or [""])[0]
        outcome = {"*": ("failed", f"{type(error).__name__}: {first}" if first else type(error).__name__)}
    request.results = {task: status for task, (status, _) in outcome.items() if task != "*"}
    failed = {task: reason for task, (status, reason) in outcome.items() if status == "failed"}
    request.status = "FAILED" if failed else "FINISHED"
    request.reason = bounded_reason("; ".join(f"{t}: {r}" for t, r in failed.items())) or None


def give_up(request: Request) -> bool:
    """A request whose scoring started MAX_ATTEMPTS times without ending (each start killed the
    backend: out of memory, a crash) is failed instead of started again."""
    if request.attempts < MAX_ATTEMPTS:
        return False
    request.status = "FAILED"
    request.reason = (f"scoring was started {request.attempts} times and never finished (the backend stopped "
                      "each time); not retried")
    return True


def bounded_reason(text: str) -> str:
    """A reason a request records, cut to MAX_REASON_CHARS (an error's message can be megabytes)."""
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class RequestStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def request_path(self, request_id: str) -> Path:
        return self.root / "requests" / f"{request_id}.json"

    def checkpoint_dir(self, request_id: str) -> Path:
        return self.root / "checkpoints" / request_id

    def embeddings_dir(self, request_id: str) -> Path:
        return request_embeddings_dir(self.root, request_id)

    def lock(self, request_id: str) -> FileLock:
        path = self.root / "locks" / f"{request_id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    def save(self, request: Request) -> None:
        request.updated = utc_timestamp()
        write_text_atomic(self.request_path(request.id), request.model_dump_json(indent=2) + "\n")

    def all(self) -> tuple[list[Request], list[Invalid]]:
        """Requests in submission order, and the request files the queue will not act on (listed)."""
        requests, invalid = [], []
        for path in sorted((self.root / "requests").glob("*.json")):
            try:
                requests.append(parse_request(path.name, read_bounded(path)))
            except (OSError, InvalidRequest) as error:
                invalid.append(Invalid(path.name, str(error)))
        return sorted(requests, key=lambda r: (r.submitted, r.id)), invalid


class Invalid(NamedTuple):
    """A request file the queue does not act on, and why."""

    name: str
    reason: str


def read_bounded(path: Path) -> bytes:
    """A request file's bytes, at most one past the limit (a larger file is refused unparsed); a
    FIFO or a device named like a request is an OSError, never a read that waits for ever."""
    return read_regular_file(path, MAX_REQUEST_BYTES)


def submit(checkpoint: Path, card: Path, store: RequestStore, tasks: str) -> Request:
    """Validate the checkpoint and file a PENDING request (the checkpoint is copied into the store)."""
    from harness.models.weight_files import find_weights, weight_parts
    from harness.models.weights_digest import weights_sha256
    from harness.models.encoder import model_slug

    checkpoint, card = Path(checkpoint), Path(card)
    if not card.is_file():
        raise HarnessError(f"{card}: model card not found; write one with architecture, pooling and embed_dim")
    weights = find_weights(checkpoint)
    parts = weight_parts(weights)  # the weights file, or a shard index and its shards
    sha256 = weights_sha256(weights, None)  # a submission is hashed whole, never from a cache
    requests, _ = store.all()
    for earlier in requests:
        if earlier.weights_sha256 == sha256 and earlier.status in ACTIVE:
            raise HarnessError(f"{weights}: these weights (sha256 {sha256[:12]}) were already submitted as "
                               f"'{earlier.id}' ({earlier.status}); they are not scored twice")
    with tempfile.TemporaryDirectory(dir=_mkdir(store.root)) as staging:
        staged = Path(staging) / "checkpoint"
        staged.mkdir()
        for part in parts:
            shutil.copyfile(part, staged / part.name)
        shutil.copyfile(card, staged / "card.yaml")
        config = weights.parent / "config.json"  # a transformers DINOv2 is built from it (zoo.resolve_card)
        if config.is_file():
            shutil.copyfile(config, staged / "config.json")
        try:
            encoder = validate_checkpoint(staged, sha256)  # a copy of the files just hashed: not hashed again
        except HarnessError as error:  # name the author's files, not the staging copy that is about to go
            message = str(error)
            for part in parts:
                message = message.replace(str(staged / part.name), str(part))
            raise HarnessError(message.replace(str(staged / "card.yaml"), str(card)).replace(str(staged), str(checkpoint))
                               ) from None
        rid = f"{model_slug(encoder.card.name or Path(weights.name.removesuffix('.index.json')).stem)}-{sha256[:12]}"
        target = store.checkpoint_dir(rid)
        if target.exists():
            shutil.rmtree(target)  # left by a FAILED submission of the same weights
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
    request = Request(id=rid, status="PENDING", model_name=encoder.card.name or str(target),
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


def request_embeddings_dir(workdir: Path, request_id: str) -> Path:
    """Where a queue backend computes one request's embeddings: a folder of their own, kept while
    the request is scored (a killed backend resumes its extraction) and removed when it ends. A
    backend that kept every submission's embeddings in one cache would fill its disk, and then
    fail every later request, within months of submissions (or hours of a flood of them)."""
    return Path(workdir) / "embeddings" / request_id


def drop_request_embeddings(workdir: Path, request_id: str, log: Callable[[str], None]) -> None:
    folder = request_embeddings_dir(workdir, request_id)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log(f"warning: {folder}: could not be removed; delete it by hand")


def run_queue(store: RequestStore, score: Callable[[Request, Path], dict[str, tuple[str, str | None]]],
              log: Callable[[str], None] = print, keep_embeddings: bool = False,
              rescoring: "Rescoring | None" = None) -> list[Request]:
    """Score every PENDING request, and every RUNNING one no process holds (a killed run), in
    submission order; then, with `rescoring`, every FINISHED one whose results are out of date
    (harness/rescoring.py). `score(request, checkpoint_dir)` -> task -> (status, reason). Whatever
    a request does, it ends FINISHED or FAILED and the queue goes on. The request's embeddings
    folder (request_embeddings_dir) is removed when it ends unless `keep_embeddings`."""
    requests, invalid = store.all()
    for name, why in invalid:
        log(f"warning: {store.root / 'requests' / name}: not acted on ({why})")
    done = []
    for request in requests:
        if request.status not in ("FINISHED", "FAILED"):
            done += _take(store, request, score, log, keep_embeddings, rescoring)
    if rescoring is not None:
        taken = {r.id for r in done}
        for request in store.all()[0]:
            if request.id not in taken and rescoring.why(request):
                done += _take(store, request, score, log, keep_embeddings, rescoring, rescore=True)
    return done


def _take(store: RequestStore, request: Request, score: Callable[[Request, Path], dict[str, tuple[str, str | None]]],
          log: Callable[[str], None], keep_embeddings: bool, rescoring: "Rescoring | None" = None,
          rescore: bool = False) -> list[Request]:
    """Score one request under its lock ([] if another process holds it, or it ended meanwhile);
    `rescore`: a FINISHED request whose results are out of date (`rescoring.why`), as a new round."""
    lock = store.lock(request.id)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"{request.id}: being scored by another process; skipped")
        return []
    try:
        try:  # fresh, under the lock
            request = parse_request(f"{request.id}.json", read_bounded(store.request_path(request.id)))
        except (OSError, InvalidRequest) as error:
            log(f"warning: {store.request_path(request.id)}: changed while waiting and not acted on ({error})")
            return []
        if rescore:
            why = rescoring.why(request, fresh=True)  # under the lock: another process may have rescored it since
            if not why:
                return []
            log(f"{request.id}: rescoring ({why})")
            rescoring.begin(request)
            # a new round: its starts are counted afresh, and the queue's table says why it runs again
            request.attempts, request.reason = 0, bounded_reason(f"rescoring: {why}")
        elif request.status in ("FINISHED", "FAILED"):
            return []
        if request.status == "RUNNING":
            log(f"{request.id}: an earlier run stopped while scoring it (attempt {request.attempts}); retrying")
        if not give_up(request):
            request.status, request.attempts = "RUNNING", request.attempts + 1
            store.save(request)
            outcome_of(request, lambda: score(request, store.checkpoint_dir(request.id)), log)
        store.save(request)
        if rescoring is not None and request.status == "FINISHED":
            rescoring.remember(request)  # scored at this state of the registry: not judged again until it changes
        if not keep_embeddings:
            drop_request_embeddings(store.root, request.id, log)
        log(f"{request.id}: {request.status}" + (f" ({request.reason})" if request.reason else ""))
        return [request]
    finally:
        lock.release()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def queue_table(requests_repo: str | None, folder: str | Path | None,
                due: Callable[[Request], str | None] | None = None) -> list[dict]:
    """The queue as rows for a table (the app's Queue tab): a Hub requests dataset, or a folder,
    in the order its backend takes them. Request files the queue will not act on are listed too,
    as INVALID with the reason. `queued`: for a Hub queue's PENDING and RUNNING requests, the Hub's
    date of the commit that last wrote each (what orders them; `submitted` and `updated` are what
    the file says). `due`: with it, each row's `rescore`, why a run with --rescore-stale would score
    the request again (harness/rescoring.py), or ''."""
    queued: dict = {}  # a Hub queue's PENDING and RUNNING requests -> the Hub's date of their last write
    if requests_repo:
        from harness.hub_queue import HubRequestStore

        store = HubRequestStore(requests_repo)
        _, requests, invalid = store.snapshot()
        queued = {rid: when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                  for rid, when in store.arrived.items()}
    else:
        requests, invalid = RequestStore(Path(folder)).all()
    rows = [{"model": r.hub_id or r.model_name, "revision": (r.commit_sha or "")[:12] or None, "status": r.status,
             "queued": queued.get(r.id), "tasks": r.tasks, "submitted": r.submitted, "updated": r.updated,
             "attempts": r.attempts, "reason": r.reason or ""} | ({"rescore": due(r) or ""} if due else {})
            for r in requests]
    return rows + [{"model": printable(name), "revision": None, "status": "INVALID", "queued": None, "tasks": None,
                    "submitted": None, "updated": None, "attempts": None, "reason": printable(why)}
                   | ({"rescore": ""} if due else {}) for name, why in invalid]

