"""The board's own submission service: the leaderboard Space files requests with its own token.

With `harness submit hf-hub:...` a submitter writes the requests dataset with their own token, so
anyone who can submit can also edit, delete or re-commit anyone's request (README). The Space's
submission form closes that, as the Open LLM Leaderboard's Space does: only the Space's token and
the backend's write the requests dataset, and a submitter types a model id and a branch or tag.
The Space checks the model as `harness submit` does (repository, commit, safetensors weights, a
card within bounds; the architecture's size is checked by the backend, which has torch) and files
the request on the board's tasks, within limits (`SubmissionLimits`):

  - a branch or tag of the repository, resolved to its commit now: not a commit sha and not a pull
    request (on the Hub anyone may open a pull request on a public repository, and its commits
    resolve like the repository's own: weights anyone uploaded would be scored under its name);
  - at most `per_namespace` requests filed for one namespace (the org or user of the model id) in
    the last `period_days` days (the Open LLM Leaderboard: 5 in 7), by the request files'
    `submitted`, which only the Space writes;
  - at most `waiting` requests waiting in the queue in all;
  - one submission checked at a time in a Space process, and at most one every two seconds (each
    costs a few Hub calls made with the Space's token: a script at the form cannot make the Space
    hammer the Hub).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError, first_problem
from harness.hub_queue import IN_QUEUE, HubRequestStore, check_hub_model, file_request, namespace
from harness.submissions import COMMIT_SHA, Request, is_hub_id
from harness.timestamps import parse_timestamp

LIMITS_ENV = "HARNESS_SUBMISSIONS"  # off (default), on, or per_namespace=5,period_days=7,waiting=100
GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
BUSY_WAIT_S = 60.0
SPACING_S = 2.0  # between the starts of two checks in one process

_one_at_a_time = threading.Lock()
_last_start = [float("-inf")]  # time.monotonic() of the last check's start


class SubmissionLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_namespace: int = Field(5, ge=1, le=10_000)  # requests one namespace may file per period
    period_days: float = Field(7.0, gt=0, le=366)
    waiting: int = Field(100, ge=1, le=100_000)  # requests the queue may hold waiting (PENDING, RUNNING)


def limits_from_env(value: str | None, label: str = LIMITS_ENV) -> SubmissionLimits | None:
    """The form's limits from HARNESS_SUBMISSIONS (or the option `label`): None (no form) when unset or
    'off', the defaults for 'on', else 'key=value,...' over the defaults; HarnessError (one line)
    for anything else."""
    text = (value or "").strip()
    if text.lower() in ("", "off", "0", "false", "no"):
        return None
    if text.lower() in ("on", "1", "true", "yes"):
        return SubmissionLimits()
    fields = {}
    for part in text.split(","):
        key, sep, number = part.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"{label} {text[:200]!r}: give on, off, or key=value pairs separated by commas "
                               "(per_namespace, period_days, waiting)")
        fields[key.strip()] = number.strip()
    try:
        return SubmissionLimits(**fields)
    except ValidationError as error:
        loc, message = first_problem(error)
        raise HarnessError(f"{label}: '{'.'.join(loc)}': {message}"[:300]) from None


def limits_text(limits: SubmissionLimits) -> str:
    """The value of HARNESS_SUBMISSIONS that gives these limits."""
    return ",".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                    for key, value in limits.model_dump().items())


def admission(limits: SubmissionLimits, model_namespace: str, now: datetime) -> Callable[[list[Request]], None]:
    """A check of the queue's requests that raises HarnessError when the queue is full or the
    namespace has filed its quota in the period."""
    def admit(requests: list[Request]) -> None:
        waiting = sum(r.status in IN_QUEUE for r in requests)
        if waiting >= limits.waiting:
            raise HarnessError(f"the queue holds {waiting} waiting requests, as many as this board takes: try again "
                               "once some are scored")
        start = now - timedelta(days=limits.period_days)
        filed = sorted(when for when in (filed_at(r) for r in requests if namespace(r) == model_namespace)
                       if when > start)
        if len(filed) >= limits.per_namespace:
            again = min(filed[0], now) + timedelta(days=limits.period_days)
            raise HarnessError(f"'{model_namespace}' has filed {len(filed)} requests in the last "
                               f"{limits.period_days:g} days, as many as this board takes from one namespace: try "
                               f"again after {again:%Y-%m-%d %H:%M} UTC")
    return admit


def filed_at(request: Request) -> datetime:
    """When a request was filed, by its `submitted`; one that cannot be read counts as filed now or
    later (never as old enough to leave the quota)."""
    try:
        when = parse_timestamp(request.submitted)
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)
    return when if when.tzinfo is not None else datetime.max.replace(tzinfo=timezone.utc)


def submit_through_service(hub_id: str, revision: str, store: HubRequestStore, tasks: str,
                           limits: SubmissionLimits, now: datetime | None = None) -> Request:
    """Check a submission typed into the form and file it (HarnessError with one line otherwise)."""
    hub_id, revision = hub_id.strip(), (revision.strip() or "main")
    if not is_hub_id(hub_id):
        raise HarnessError(f"'{hub_id[:200]}': not a model repository id: give ORG/MODEL")
    if COMMIT_SHA.fullmatch(revision) or not GIT_REF.fullmatch(revision) or ".." in revision:
        raise HarnessError(f"'{revision[:200]}': give a branch or tag of the repository (e.g. main): the form scores "
                           "the commit it points to now")
    if not _one_at_a_time.acquire(timeout=BUSY_WAIT_S):
        raise HarnessError("the board is checking other submissions: try again in a minute")
    try:
        time.sleep(max(0.0, _last_start[0] + SPACING_S - time.monotonic()))
        _last_start[0] = time.monotonic()
        admit = admission(limits, hub_id.split("/")[0].lower(), now or datetime.now(timezone.utc))
        admit(store.snapshot()[1])  # a full queue or a spent quota costs one read, not the model's checks
        hub_id, sha = check_hub_model(hub_id, branch_or_tag_commit(hub_id, revision), check_architecture=False)
        return file_request(store, hub_id, revision, sha, tasks, admit=admit)
    finally:
        _one_at_a_time.release()


def branch_or_tag_commit(hub_id: str, revision: str) -> str:
    """The commit a branch or tag of the model repository points to; a pull request's ref, or a name
    the repository does not have, is refused."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from harness.hub_access import hub_api, hub_error

    try:
        refs = hub_api().list_repo_refs(hub_id)
    except RepositoryNotFoundError:  # the submitter has no token to log in with: say what to check
        raise HarnessError(f"{hub_id}: no such public model repository on the Hub: check the name") from None
    except (HfHubHTTPError, OSError) as error:
        raise hub_error("reading the model's branches and tags", hub_id, error) from None
    for ref in [*refs.branches, *refs.tags]:
        if revision in (ref.name, ref.ref) and isinstance(ref.target_commit, str) \
                and COMMIT_SHA.fullmatch(ref.target_commit):
            return ref.target_commit
    raise HarnessError(f"hf-hub:{hub_id}: no branch or tag '{revision[:200]}' (pull requests are not scored: "
                       "anyone may open one)")
