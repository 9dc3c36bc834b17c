"""Submissions on the Hugging Face Hub (the Open LLM Leaderboard pattern).

A model author runs `harness submit hf-hub:ORG/MODEL --revision REV --requests-repo ORG/REQUESTS`.
The submission is checked against the Hub, then written as one request file into a Hub dataset:

  requests/<org>--<model>--<sha12>.json      status PENDING -> RUNNING -> FINISHED | FAILED

A backend (`harness queue run --requests-repo ... --results-repo ...`) takes PENDING requests
oldest first, by the Hub's date of the last commit that wrote each request file (a file's own
`submitted` is whatever its writer put there). It claims one by a commit whose `parent_commit` is
the head it read: if another backend committed in between, the Hub refuses the commit (HTTP 412),
so two backends never score the same request. It downloads the weights at the pinned commit,
scores them as a local checkpoint, pushes the results, and marks the request FINISHED or FAILED
with the reason.
A backend killed mid-request finds its own RUNNING claim on the next start and resumes it
(embeddings and result files already written are kept); another backend's claim is left alone
until it is older than the lease, by the Hub's date of the commit that wrote it (not the file's
`updated`, which its writer sets). While a backend scores, it renews its claim every hour (a
commit of the same claim), so a scoring that takes longer than the lease is not taken for dead.
A request's downloaded weights are deleted once it is FINISHED or FAILED, so a backend's disk
does not fill with every model it has scored.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from bisect import bisect_right
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml

from harness.atomic_write import write_text_atomic
from harness.bounded_read import read_regular_file
from harness.errors import HarnessError
from harness.hub_access import hub_api, hub_call, hub_error
from harness.hub_file_cache import files_at_commit
from harness.submissions import (ACTIVE, COMMIT_SHA, MAX_REQUEST_BYTES, Invalid, InvalidRequest, Request,
                                 bounded_reason, drop_request_embeddings, give_up, outcome_of, parse_request,
                                 is_hub_id, read_bounded, request_id)
from harness.timestamps import utc_timestamp

if TYPE_CHECKING:
    from harness.rescoring import Rescoring

PREFIX = "requests"
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
ARRIVAL_BATCH = 100  # request paths per paths-info call
WEIGHTS_ROOM = 64 * 1024 * 1024  # bytes a weights file may have beyond its architecture in float32 (header, a head)
REQUEST_FILE = re.compile(rf"{PREFIX}/[^/]+\.json")  # a request: a top-level file of requests/ (none in a folder)


IN_QUEUE = ("PENDING", "RUNNING")  # statuses of the requests the queue still holds


class ClaimConflict(Exception):
    """The requests dataset moved since it was read (another backend or submitter committed)."""


def namespace(request: Request) -> str:
    """Who a request is for: the org or user of its model's Hub id."""
    return (request.hub_id or request.model_name).split("/")[0].lower()


def fair_order(requests: list[Request], written: dict[str, datetime]) -> list[Request]:
    """The queue's order. `written`: request id -> the Hub's date of the commit that last wrote its
    file (when a PENDING request arrived; when a RUNNING one was claimed; when an ended one ended).
    Waiting and running requests first, by how many requests of their namespace (the org or user of
    the model's Hub id) were claimed or ended since they arrived (fewest first), then oldest first;
    ended requests last. The namespaces so take turns: a flood of requests from one delays each
    other namespace's request by about one of its own, instead of holding the backend for as long
    as the flood takes to score. Within one namespace, requests go oldest first."""
    never = datetime.max.replace(tzinfo=timezone.utc)

    def when(request: Request) -> datetime:
        return written.get(request.id, never)

    served: dict[str, list[datetime]] = {}  # namespace -> dates its requests were claimed or ended, sorted
    for request in requests:
        if request.status != "PENDING" and request.id in written:
            served.setdefault(namespace(request), []).append(written[request.id])
    for dates in served.values():
        dates.sort()

    # a request's turn: its namespace's services since it arrived, and never earlier than an older
    # request of its namespace (one filed after a service would otherwise overtake one filed before)
    turn: dict[str, int] = {}
    latest: dict[str, int] = {}
    for request in sorted((r for r in requests if r.status in IN_QUEUE), key=lambda r: (when(r), r.submitted, r.id)):
        name = namespace(request)
        dates = served.get(name, [])
        since = len(dates) - bisect_right(dates, when(request))  # services dated after it arrived
        turn[request.id] = latest[name] = max(since, latest.get(name, 0))

    def key(request: Request) -> tuple:
        if request.status not in IN_QUEUE:
            return (1, 0, never, request.submitted, request.id)
        return (0, turn[request.id], when(request), request.submitted, request.id)

    return sorted(requests, key=key)


class HubRequestStore:
    """The requests dataset: read at one commit, written with that commit as parent."""

    def __init__(self, repo_id: str):
        self.repo_id = repo_id
        self.arrived: dict[str, datetime] = {}  # the last snapshot's PENDING and RUNNING ids -> Hub date
        self.blobs: dict[str, str] = {}  # the last snapshot's request files -> their blob ids (what each holds)
        self._written: dict[tuple[str, str], datetime] = {}  # (path, blob id) -> Hub date of the commit that wrote it

    def snapshot(self) -> tuple[str | None, list[Request], list[Invalid]]:
        """(head commit, requests at it, request files not acted on); (None, [], []) for a dataset
        that has no commit yet. A request file larger than a request may be is listed by the size
        the Hub gives and never downloaded (a gigabyte named `requests/x.json` costs nothing)."""
        info = hub_call("reading the requests", self.repo_id,
                        lambda: hub_api().repo_info(self.repo_id, repo_type="dataset", files_metadata=True))
        if not info.sha or set(info.sha) == {"0"}:
            return None, [], []
        files = sorted((s for s in info.siblings or [] if REQUEST_FILE.fullmatch(s.rfilename)), key=lambda s: s.rfilename)
        oversized = {s.rfilename: s.size for s in files if (s.size or 0) > MAX_REQUEST_BYTES}
        wanted = [s for s in files if s.rfilename not in oversized]
        local = files_at_commit(self.repo_id, "dataset", info.sha, wanted, "reading the requests")
        requests = []
        invalid = [Invalid(name.removeprefix(f"{PREFIX}/"), f"{size:,} bytes, more than a request may have "
                           f"({MAX_REQUEST_BYTES:,}); not downloaded") for name, size in oversized.items()]
        for sibling in wanted:
            name = sibling.rfilename.removeprefix(f"{PREFIX}/")
            try:
                requests.append(parse_request(name, read_bounded(local[sibling.rfilename]), hub=True))
            except (OSError, InvalidRequest) as error:
                invalid.append(Invalid(name, str(error)))
        invalid.sort()
        # the Hub's dates of the active requests, and of the ended ones of namespaces still waiting
        # (what the order's turns count); a file's date is read once per blob, not at every snapshot
        waiting = {namespace(r) for r in requests if r.status in IN_QUEUE}
        dated = [r for r in requests if namespace(r) in waiting]
        blobs = self.blobs = {s.rfilename: s.blob_id or "" for s in wanted}
        written = self.arrival_times(info.sha, dated, blobs)
        active = {r.id for r in requests if r.status in IN_QUEUE}
        self.arrived = {rid: when for rid, when in written.items() if rid in active}
        return info.sha, fair_order(requests, written), invalid

    def arrival_times(self, head: str, requests: list[Request], blobs: dict[str, str] | None = None
                      ) -> dict[str, datetime]:
        """When each request file was last written, by the Hub's clock: the date of the last commit
        that changed it. This, not the file's own `submitted` (whatever its writer put there), is the
        queue's order: a request edited to claim an earlier time goes to the back, not the front.
        Requests written in one commit keep their `submitted` order among themselves. `blobs`:
        path -> blob id at `head`; a path whose blob was dated before is not asked for again."""
        blobs = {path: blob for path, blob in (blobs or {}).items() if blob}
        times: dict[str, datetime] = {}
        unknown = []
        for request in requests:
            path = f"{PREFIX}/{request.id}.json"
            if (path, blobs.get(path)) in self._written:
                times[request.id] = self._written[(path, blobs[path])]
            else:
                unknown.append(path)
        for start in range(0, len(unknown), ARRIVAL_BATCH):
            paths = unknown[start:start + ARRIVAL_BATCH]
            entries = hub_call("reading the requests", self.repo_id, lambda paths=paths: hub_api().get_paths_info(
                self.repo_id, paths, expand=True, revision=head, repo_type="dataset"))
            for entry in entries:
                if getattr(entry, "last_commit", None) is not None:
                    times[entry.path.removeprefix(f"{PREFIX}/").removesuffix(".json")] = entry.last_commit.date
                    if entry.path in blobs:
                        self._written[(entry.path, blobs[entry.path])] = entry.last_commit.date
        return times

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

    def head(self) -> str | None:
        """The dataset's head commit; None if it has none yet."""
        sha = hub_call("reading the requests", self.repo_id,
                       lambda: hub_api().repo_info(self.repo_id, repo_type="dataset")).sha
        return None if not sha or set(sha) == {"0"} else sha

    def update(self, request: Request, message: str, attempts: int = 5) -> None:
        """Write the request on the current head, re-reading if another commit slipped in."""
        for _ in range(attempts):
            head = self.head()  # the commit to write on: no need to read every request again
            try:
                return self.write(request, head, message)
            except ClaimConflict:
                continue
        raise HarnessError(f"{self.repo_id}: could not update request {request.id}: the dataset kept changing")


def submit_from_hub(hub_id: str, revision: str | None, store: HubRequestStore, tasks: str) -> Request:
    """Check a Hub model (repo, revision, safetensors weights, card) and file a PENDING request."""
    hub_id, sha = check_hub_model(hub_id, revision)
    return file_request(store, hub_id, revision, sha, tasks)


def check_hub_model(hub_id: str, revision: str | None, check_architecture: bool = True) -> tuple[str, str]:
    """The repository's id as the Hub spells it (`Lab/FM` is `lab/fm`) and the commit `revision`
    resolves to, once the repository holds safetensors weights and a card within bounds;
    HarnessError (one line) otherwise.
    `check_architecture`: also build the card's architecture on PyTorch's meta device and refuse it
    above the parameter budget (needs torch; the leaderboard Space has none, and the backend
    checks again before it builds anything)."""
    from huggingface_hub.errors import RevisionNotFoundError

    if not is_hub_id(hub_id):
        raise HarnessError(f"hf-hub:{hub_id}: not a model repository id: give ORG/MODEL")
    if revision is not None and revision.startswith("refs/pr/"):
        raise HarnessError(f"hf-hub:{hub_id}: '{revision[:100]}' is a pull request, which anyone may open on a public "
                           "repository: submit a branch, tag or commit of the repository itself")
    api = hub_api()
    try:
        info = api.model_info(hub_id, revision=revision, files_metadata=True)
    except RevisionNotFoundError:
        raise HarnessError(f"hf-hub:{hub_id}: revision '{revision}' not found: give a branch, tag or commit "
                           "sha that exists in the model repository") from None
    except Exception as error:  # noqa: BLE001 - one line, as every Hub failure
        raise hub_error("reading the model", hub_id, error) from None
    sha = info.sha
    if not isinstance(sha, str) or not COMMIT_SHA.fullmatch(sha):
        raise HarnessError(f"hf-hub:{hub_id}: the Hub named no commit for revision '{revision or 'main'}'")
    if isinstance(info.id, str) and info.id.lower() == hub_id.lower():
        hub_id = info.id
    files = {s.rfilename: s.size or 0 for s in info.siblings or []}  # name -> bytes
    if not any(f.endswith(".safetensors") for f in files):
        pickled = [f for f in files if f.endswith(PICKLED)]
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: no .safetensors weights"
                           + (f" ({pickled[0]} is a pickle format, which is never loaded)" if pickled else "")
                           + ": upload model.safetensors (safetensors.torch.save_file(model.state_dict(), ...))")
    shard_plan(hub_id, sha, files)  # an index that names files the repository lacks is refused now
    with tempfile.TemporaryDirectory() as folder:  # the card is refused now, not when a backend takes it
        from harness.models.card import read_card
        from harness.models.zoo import resolve_card  # torch-free: the Space checks the card's names too

        path = card_at_commit(hub_id, sha, files, Path(folder))
        card = resolve_card(read_card(path), path)
        if check_architecture:
            from harness.models.building import check_architecture_budget

            check_architecture_budget(card, f"hf-hub:{hub_id}@{sha[:12]}")
    return hub_id, sha


def shard_plan(hub_id: str, sha: str, files: dict[str, int]) -> tuple[str, bytes, list[str]] | None:
    """(index name, its bytes, the shards it names) where the repository's weights are split over
    shards with no model.safetensors whole; None where they are not. The index is untrusted: it is
    refused unread when the Hub lists it above its bound, and refused when a shard it names is not a
    file of the repository's top level (it never chooses a path)."""
    from huggingface_hub import hf_hub_download

    from harness.models.weight_files import MAX_INDEX_BYTES, parse_shard_index, shard_index_name

    where = f"hf-hub:{hub_id}@{sha[:12]}"
    index = shard_index_name([name for name in files if "/" not in name], where)
    if index is None:
        return None
    if files[index] > MAX_INDEX_BYTES:
        raise HarnessError(f"{where}/{index}: a shard index of {files[index]:,} bytes, more than {MAX_INDEX_BYTES:,}; "
                           "not downloaded")
    path = hub_call("reading the shard index", hub_id, lambda: hf_hub_download(hub_id, index, revision=sha))
    data = read_regular_file(Path(path), MAX_INDEX_BYTES)
    shards = list(parse_shard_index(data, f"{where}/{index}"))
    absent = [name for name in shards if name not in files]
    if absent:
        raise HarnessError(f"{where}/{index}: names {len(absent)} shard(s) the repository does not hold at this commit "
                           f"(e.g. {absent[0]}); upload every shard with its index")
    return index, data, shards


def file_request(store: HubRequestStore, hub_id: str, revision: str | None, sha: str, tasks: str,
                 admit: Callable[[list[Request]], None] | None = None, attempts: int = 5) -> Request:
    """Commit a PENDING request for `hub_id` at commit `sha` on the head the queue was read at. A
    commit already pending, running or finished is refused; so is whatever `admit(requests)`
    refuses (HarnessError: the submission service's quotas). If another commit lands between the
    read and the write, the queue is read and checked again: a request claimed meanwhile is never
    written back to PENDING."""
    rid = request_id(hub_id, sha)
    for _ in range(attempts):
        head, requests, _ = store.snapshot()
        for earlier in requests:
            if earlier.id.lower() == rid.lower() and earlier.status in ACTIVE:  # the Hub's ids ignore case
                raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: already submitted as '{earlier.id}' "
                                   f"({earlier.status}); a commit is scored once")
        if admit is not None:
            admit(requests)
        request = Request(id=rid, status="PENDING", model_name=hub_id, hub_id=hub_id, revision=revision or "main",
                          commit_sha=sha, tasks=tasks, submitted=utc_timestamp(), updated=utc_timestamp())
        try:
            store.write(request, head, f"submit {hub_id}@{sha[:12]}")
            return request
        except ClaimConflict:
            continue
    raise HarnessError(f"{store.repo_id}: could not file the request for hf-hub:{hub_id}@{sha[:12]}: the requests "
                       "dataset kept changing; try again")


def card_at_commit(hub_id: str, sha: str, files: dict[str, int], folder: Path) -> Path:
    """The model card as the repository holds it at `sha` (`files`: its file names and sizes), written
    to `folder`/card.yaml with the Hub id and commit it was read at; a known model without one gets
    {base: <known model>}. Its keys and bounds are checked as a run checks them (read_card); a card
    listed larger than a card may be is refused without downloading it. The repository's config.json,
    where it lists one of at most 1 MiB, is copied beside it (a transformers DINOv2 is built from it)."""
    from huggingface_hub import hf_hub_download

    from harness.models.card import MAX_CARD_BYTES, MAX_CONFIG_BYTES, read_card
    from harness.models.zoo import find_known_model

    folder.mkdir(parents=True, exist_ok=True)
    if files.get("card.yaml", 0) > MAX_CARD_BYTES:
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}/card.yaml: a model card of {files['card.yaml']:,} bytes; a "
                           f"card is a short YAML file (at most {MAX_CARD_BYTES:,} bytes); not downloaded")
    if "card.yaml" in files:
        downloaded = Path(hub_call("reading the model card", hub_id, lambda: hf_hub_download(
            hub_id, "card.yaml", revision=sha)))
        card = read_card(downloaded, label=f"hf-hub:{hub_id}@{sha[:12]}/card.yaml").model_dump(exclude_defaults=True)
        if card.get("embed_dim") is None and card.get("base") is None:
            raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: card.yaml must declare embed_dim (or a known base)")
    elif find_known_model(hub_id) is not None:
        card = {"base": find_known_model(hub_id).name}
    else:
        hint = _timm_config_hint(hub_id, sha, files)
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: no card.yaml in the repository and not a known model: add "
                           "card.yaml (architecture, pooling, mean, std, input_size, embed_dim)"
                           + (f"; {hint}" if hint else ""))
    card.update(name=hub_id, hub_id=hub_id, revision=sha)
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    if 0 < files.get("config.json", 0) <= MAX_CONFIG_BYTES:  # a transformers DINOv2 is built from it (zoo.resolve_card)
        config = Path(hub_call("reading the model's config.json", hub_id, lambda: hf_hub_download(
            hub_id, "config.json", revision=sha)))
        shutil.copyfile(config, folder / "config.json")
    return path


def _timm_config_hint(hub_id: str, sha: str, files: dict[str, int]) -> str | None:
    """The card a timm model's config.json at `sha` implies (timm_config_hint), or what a transformers
    DINOv2's needs (dinov2_card_hint), or None: no such file, one larger than 1 MiB, neither, or not
    readable now."""
    from huggingface_hub import hf_hub_download

    from harness.models.card import MAX_CONFIG_BYTES, timm_config_hint
    from harness.models.dinov2_config import dinov2_card_hint

    if not 0 < files.get("config.json", 0) <= MAX_CONFIG_BYTES:
        return None
    try:
        path = Path(hub_call("reading the model's config.json", hub_id, lambda: hf_hub_download(
            hub_id, "config.json", revision=sha)))
    except HarnessError:
        return None
    return timm_config_hint(path) or dinov2_card_hint(path)


def fetch_checkpoint(request: Request, folder: Path) -> Path:
    """The request's weights and card at its pinned commit, as a local checkpoint folder (what
    `harness run --model PATH` and the queue score). Nothing of the request but its repository
    and commit is used. Only the weights that are scored are downloaded (`model.safetensors`, else
    the shards a shard index names, else the first `.safetensors`), and only if the Hub lists them
    at no more bytes than the card's architecture holds in float32 (WEIGHTS_ROOM beside): a
    repository cannot fill the backend's disk."""
    from harness.models.building import architecture_size
    from harness.models.card import read_card
    from harness.models.checkpoint import resolve_card
    from harness.models.weight_files import SHARD_INDEX

    hub_id, sha = request.hub_id, request.commit_sha
    info = hub_call("downloading the weights", hub_id, lambda: hub_api().model_info(
        hub_id, revision=sha, files_metadata=True))
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    weights = sorted(name for name in sizes if name.endswith(".safetensors") and "/" not in name)
    if not weights:
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: no .safetensors weights at this commit")
    shards = shard_plan(hub_id, sha, sizes)
    card_path = card_at_commit(hub_id, sha, sizes, folder)
    scored = shards[2] if shards else ["model.safetensors" if "model.safetensors" in weights else weights[0]]
    listed = sum(sizes[name] for name in scored)
    _, numbers = architecture_size(resolve_card(read_card(card_path), card_path))
    if listed > 4 * numbers + WEIGHTS_ROOM:
        what = f"its {len(scored)} shards are" if shards else f"{scored[0]} is"
        raise HarnessError(f"hf-hub:{hub_id}@{sha[:12]}: {what} {listed:,} bytes, more than the card's architecture "
                           f"holds ({numbers:,} numbers in float32); not downloaded: check the card and the weights")
    if shards:
        _, data, names = shards  # the index as read and checked (UTF-8 JSON), under a name the repository does not choose
        write_text_atomic(folder / f"model{SHARD_INDEX}", data.decode("utf-8"))
        for name in names:
            _download(hub_id, sha, name, folder / name)
    else:
        _download(hub_id, sha, scored[0], folder / "model.safetensors")
    return folder


def _download(hub_id: str, sha: str, name: str, target: Path) -> None:
    """`name` at `sha` to `target`: downloaded beside it (resumable), then renamed, so that a kill
    never leaves half a file under the name; a file already there is kept (an earlier attempt's)."""
    from huggingface_hub import hf_hub_download

    if target.exists():
        return
    staging = target.parent / ".download"  # not huggingface_hub's cache: one copy on disk, removed when scored
    downloaded = hub_call("downloading the weights", hub_id, lambda: hf_hub_download(
        hub_id, name, revision=sha, local_dir=staging))
    os.replace(downloaded, target)
    shutil.rmtree(staging, ignore_errors=True)


class ClaimRenewal:
    """While a request is scored, its claim is committed again every `every`: the Hub dates each
    commit, so a scoring that outlasts the lease (a 1B-parameter model on every task) is not taken
    over by another backend as a dead claim. A renewal that fails is logged and tried again at the
    next beat; leaving the `with` block stops it before the request's outcome is written."""

    def __init__(self, store: HubRequestStore, claim: Request, every: timedelta, log: Callable[[str], None]):
        self.store, self.claim, self.every, self.log = store, claim.model_copy(deep=True), every, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"renew {claim.id}", daemon=True)

    def __enter__(self) -> "ClaimRenewal":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every.total_seconds()):
            try:
                self.store.update(self.claim.model_copy(), f"renew claim {self.claim.id} ({self.claim.claimed_by})")
            except Exception as error:  # noqa: BLE001 - a missed renewal must not stop the scoring
                self.log(f"{self.claim.id}: could not renew the claim ({str(error).splitlines()[0][:200]}); "
                         "trying again later")


def _stale(written: datetime | None, lease: timedelta) -> bool:
    """A claim is stale once the Hub's date of the commit that last wrote it is older than the lease.
    The file's own `updated` is not read: any writer of the requests dataset sets it, to 2999 (a
    claim never taken over, the request never scored) or to 2000 (a live claim scored twice)."""
    return written is None or datetime.now(timezone.utc) - written > lease


def run_hub_queue(store: HubRequestStore, backend: str, workdir: Path,
                  score: Callable[[Request, Path], dict[str, tuple[str, str | None]]],
                  publish: Callable[[Request], None], lease: timedelta = timedelta(hours=24),
                  log: Callable[[str], None] = print, renew_every: timedelta = timedelta(hours=1),
                  keep_embeddings: bool = False, rescoring: "Rescoring | None" = None) -> list[Request]:
    """Score requests until none is left: this backend's own RUNNING claims first (a restart after
    a kill), then PENDING ones (and other backends' RUNNING claims the Hub dates older than the
    lease) in the queue's order (fair_order), then, with `rescoring`, FINISHED ones whose results
    are out of date (harness/rescoring.py), oldest first. `score(request, checkpoint_dir)` -> task
    -> (status, reason); `publish(request)` pushes its results. The claim is renewed every
    `renew_every` while the request is scored. When a request ends, its checkpoint and (unless
    `keep_embeddings`) its embeddings folder under `workdir` (submissions.request_embeddings_dir)
    are removed."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # a backend's log is one line per event, not a bar per file fetched
    done: list[Request] = []
    seen: set[str] = set()
    listed: set[str] = set()
    blobs_at_read: dict[str, str] = {}  # with rescoring: the request files' blobs when the results were read
    while True:
        head, requests, invalid = store.snapshot()
        if not done and not seen:  # the first read: what an earlier life of this backend left behind
            _sweep_ended(workdir, requests, keep_embeddings, log)
        for name, why in invalid:
            if name not in listed:
                log(f"warning: {store.repo_id}/{PREFIX}/{name}: not acted on ({why})")
                listed.add(name)
        mine = [r for r in requests if r.status == "RUNNING" and r.claimed_by == backend and r.id not in seen]
        pending = [r for r in requests if r.id not in seen and (
            r.status == "PENDING" or (r.status == "RUNNING" and r.claimed_by != backend
                                       and _stale(store.arrived.get(r.id), lease)))]
        rescore = None
        if not mine and not pending and rescoring is not None:
            reading = not rescoring.has_read
            rescore = next(((r, why) for r in requests if r.id not in seen and (why := rescoring.why(r))), None)
            if reading:  # the request files as they were when the results were read: what each verdict saw
                blobs_at_read = dict(store.blobs)
        if not mine and not pending and rescore is None:
            return done
        request = (mine or pending or [rescore[0]])[0]
        if rescore is not None:  # a new round, chosen by this backend: its starts are counted afresh
            path = f"{PREFIX}/{request.id}.json"
            if store.blobs.get(path) != blobs_at_read.get(path):  # another backend rescored it meanwhile, say
                log(f"{request.id}: its request changed since this run read the results (another backend may "
                    "have rescored it); left to the next run")
                seen.add(request.id)
                continue
            log(f"{request.id}: rescoring ({rescore[1]})")
            request.attempts, request.reason = 0, bounded_reason(f"rescoring: {rescore[1]}")  # shown while it runs
        else:  # this backend's own count of its starts, not only the file's, which any writer can reset
            # to 0 (and so have a request that kills the backend started again after every restart)
            request.attempts = max(request.attempts, _starts_here(workdir, request.id))
        if request.status == "RUNNING":
            log(f"{request.id}: resuming (claimed by {request.claimed_by}, attempt {request.attempts})")
        if give_up(request):  # it stopped the backend each time it was scored: failed, not claimed again
            if _write_claim(store, request, head, f"failed {request.id}", log):
                seen.add(request.id)
                _drop_scratch(workdir, request.id, keep_embeddings, log)
                log(f"{request.id}: FAILED ({request.reason})")
                done.append(request)
            continue
        request.status, request.claimed_by, request.attempts = "RUNNING", backend, request.attempts + 1
        if not _write_claim(store, request, head, f"{'rescore' if rescore else 'claim'} {request.id} ({backend})", log):
            continue
        seen.add(request.id)
        if rescore is not None:
            rescoring.begin(request)
        try:
            write_text_atomic(workdir / "attempts" / request.id, f"{request.attempts}\n")
        except (OSError, HarnessError) as error:  # a full disk: the scoring will say so, the queue goes on
            log(f"warning: {request.id}: could not record the start ({str(error).splitlines()[0][:200]})")
        log(f"{request.id}: RUNNING on {backend}")

        def scored(request=request) -> dict[str, tuple[str, str | None]]:
            outcome = score(request, fetch_checkpoint(request, workdir / "checkpoints" / request.id))
            if any(status != "failed" for status, _ in outcome.values()):
                publish(request)
            return outcome

        with ClaimRenewal(store, request, renew_every, log):
            outcome_of(request, scored, log)
        store.update(request, f"{request.status.lower()} {request.id}")
        if rescoring is not None and request.status == "FINISHED":
            rescoring.remember(request)  # scored at this state of the registry: not judged again until it changes
        _drop_scratch(workdir, request.id, keep_embeddings, log)
        log(f"{request.id}: {request.status}" + (f" ({request.reason})" if request.reason else ""))
        done.append(request)


def _starts_here(workdir: Path, request_id: str) -> int:
    """How many times this backend started scoring the request (<workdir>/attempts/<id>, kept after
    the request ends: a request set back to PENDING by hand is not started more often for it)."""
    try:
        return max(0, int(read_regular_file(workdir / "attempts" / request_id, 20)[:20]))
    except (OSError, ValueError):
        return 0


def _drop_scratch(workdir: Path, request_id: str, keep_embeddings: bool, log: Callable[[str], None]) -> None:
    """A commit is scored once: its weights, and unless asked its embeddings, are not kept (its results are)."""
    shutil.rmtree(workdir / "checkpoints" / request_id, ignore_errors=True)
    if not keep_embeddings:
        drop_request_embeddings(workdir, request_id, log)


def _sweep_ended(workdir: Path, requests: list[Request], keep_embeddings: bool, log: Callable[[str], None]) -> None:
    """Remove the folders of requests that ended while this backend was not looking: it was
    killed, another backend took its claim over after the lease and finished it, and the folders
    would otherwise stay on this machine's disk for good. Folders of live or unknown requests stay."""
    ended = {r.id for r in requests if r.status in ("FINISHED", "FAILED")}
    parents = ("checkpoints",) if keep_embeddings else ("checkpoints", "embeddings")
    for rid in sorted({f.name for parent in parents for f in (workdir / parent).glob("*")} & ended):
        log(f"{rid}: ended elsewhere; removing what it left in {workdir}")
        _drop_scratch(workdir, rid, keep_embeddings, log)


def _write_claim(store: HubRequestStore, request: Request, head: str | None, message: str,
                 log: Callable[[str], None]) -> bool:
    """Commit the request on the head it was read at; False (and read again) if the queue moved."""
    try:
        store.write(request, head, message)
        return True
    except ClaimConflict:
        log(f"{request.id}: the queue changed while claiming; reading it again")
        return False
