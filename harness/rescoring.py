"""Scoring finished submissions again when the protocol has moved on (`queue run --rescore-stale`).

A task's version or params change in tasks.yaml, the board's suite gains a task, or the backend
gets a dataset it lacked: every submitted model's result of that task is then stale on the board
(shown, not ranked), missing or skipped, and a finished request is never scored again on its own
(the same weights or commit are not queued twice). A backend run with `--rescore-stale` takes,
after the waiting requests, each FINISHED request whose results are out of date for the tasks it
would be scored on now, and scores it again as it scored it the first time (claimed RUNNING, then
FINISHED or FAILED); the runner reuses the results that are still current and scores the rest.

What is out of date is judged as the board judges it (`leaderboard.aggregate.stale_check`), from
the results the board shows: the results dataset of a Hub queue, the results folder of a local
one. Only a request's own results count: a model folder holding another commit's (or other
weights') results belongs to that later submission, and the earlier request is left alone.

Each request is judged, and rescored, at most once per state of the registry (its tasks' versions
and params, and which of their data is on this backend): the backend remembers the state at which
it last scored a request or found its results current (`<workdir>/judged/<request>`). A task that
stays stale after scoring does not send the request round again at every start; a request set
back to FINISHED by a writer of the requests dataset gets no more than one more round; and a
backend run from cron reads the results only when that state changed or a request was not judged
yet (a board of 4,000 models on 30 tasks is 120,000 result files to download and read).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.atomic_write import atomic_path, write_text_atomic
from harness.bounded_read import read_regular_file
from harness.errors import HarnessError
from harness.evaluation import resolved_params
from harness.leaderboard.aggregate import first_names, stale_check
from harness.results import ResultStore, TaskResult
from harness.submissions import Request

if TYPE_CHECKING:
    from harness.registry import Registry

MAX_NAMED = 3  # tasks named in a rescoring's one-line reason; the rest are counted


class Rescoring:
    """Which FINISHED requests to score again, and the memory that each goes round once per state
    of the registry. `results()`: the folder of the results the board shows (read when first
    needed); `slug_of(request)`: its model's folder there (None: unknown, not rescored);
    `tasks_of(request)`: the tasks it is scored on now; `memory`: a folder of this backend's;
    `record`: False for a listing (`queue list --rescore-stale`), which writes nothing there;
    `available(task)`: whether the task's data is on this backend now (a result skipped for want
    of it is then out of date too)."""

    def __init__(self, registry: "Registry", families: dict, tasks_of: Callable[[Request], list[str]],
                 slug_of: Callable[[Request], str | None], results: Callable[[], Path], memory: Path,
                 output: Path | None = None, log: Callable[[str], None] = print, record: bool = True,
                 available: Callable[[str], bool] | None = None):

        self.registry, self.families, self.memory, self.log = registry, families, Path(memory), log
        self.record = record  # False: a listing, which judges and writes nothing
        self.available = available  # task -> whether its data is on this backend now (None: not asked)
        self._present: dict[str, bool] = {}
        self.tasks_of, self.slug_of, self._results, self.output = tasks_of, slug_of, results, output
        self._folder: Path | None = None
        self._unreadable = False  # the results could not be read in this run
        self._states: dict[tuple[str, ...], str] = {}
        self._verdicts: dict[str, str | None] = {}  # request id -> why; the results read do not change in a run
        registered = {name: (task.family, task.main_score, task.params, task.version)
                      for name, task in registry.tasks.items()}
        self._stale = stale_check(registered, families)

    def why(self, request: Request, fresh: bool = False) -> str | None:
        """One line saying which of the request's results are out of date, or None: not FINISHED,
        scored or judged already at this state of the registry, its results superseded by another
        submission's, or all of them current. `fresh`: judged again (the memory and the results
        re-read), not answered from this run's earlier verdict."""
        if request.status != "FINISHED":
            return None
        if fresh or request.id not in self._verdicts:
            self._verdicts[request.id] = self._why(request)
        return self._verdicts[request.id]

    @property
    def has_read(self) -> bool:
        """Whether this run has read (or failed to read) the results its verdicts are judged on."""
        return self._folder is not None or self._unreadable

    def _why(self, request: Request) -> str | None:
        tasks = self.tasks_of(request)
        if not tasks or self._remembered(request.id) == self.state(tasks):
            return None
        slug = self.slug_of(request)
        if slug is None:
            return None
        if self._folder is None and not self._unreadable:
            try:
                self._folder = self._results()
            except HarnessError as error:  # said once; nothing is judged in this run
                self.log(f"warning: no finished request is rescored in this run ({str(error).splitlines()[0][:300]})")
                self._unreadable = True
        if self._folder is None:
            return None
        store = ResultStore(self._folder)
        stale, missing, skipped = [], [], []
        for task in tasks:
            result = store.read(store.path(slug, task))
            if result is None:  # never written, or not a valid result file: scoring writes it
                missing.append(task)
            elif not _owned_by(result, request):  # another submission's (a later commit): not this one's to refresh
                self.remember(request)
                return None
            elif (reason := self._stale(result)) is not None:
                stale.append(f"{task} {reason}")
            elif result.status == "skipped" and self._here(task):
                skipped.append(task)
        if not stale and not missing and not skipped:
            self.remember(request)  # current: not read again until the registry (or the data here) changes
            return None
        parts = stale[:MAX_NAMED] + ([f"{len(stale) - MAX_NAMED} more stale"] if len(stale) > MAX_NAMED else [])
        if missing:
            parts.append(f"no result of {first_names(missing, MAX_NAMED)}")
        if skipped:
            parts.append(f"{first_names(skipped, MAX_NAMED)} skipped, and the data is here now")
        return "; ".join(parts)

    def _here(self, task: str) -> bool:
        """Whether the task's data is on this backend now (asked once per task in a run)."""
        if self.available is None:
            return False
        if task not in self._present:
            self._present[task] = self.available(task)
        return self._present[task]

    def begin(self, request: Request) -> None:
        """A request is about to be rescored: remembered at this state of the registry before it is
        scored (a rescoring that stops the backend counts as its round, and its starts are bounded as
        a new request's are), and its current results copied where the backend writes."""
        try:
            self.remember(request, strict=True)
            self._seed(request)
        except (OSError, HarnessError) as error:  # a full disk: the rescoring goes on, and may go round again
            self.log(f"warning: {request.id}: could not record the rescoring ({str(error).splitlines()[0][:200]})")

    def remember(self, request: Request, strict: bool = False) -> None:
        """This request was scored, or judged, at this state of the registry: not judged again until
        it changes. `strict`: a write that fails raises (otherwise it only costs a reading later)."""
        self._verdicts[request.id] = None
        if not self.record:
            return
        try:
            write_text_atomic(self.memory / request.id, self.state(self.tasks_of(request)) + "\n")
        except (OSError, HarnessError):
            if strict:
                raise

    def _seed(self, request: Request) -> None:
        """Copy the request's results the board shows into `output`, where the backend writes (a Hub
        queue's backend may not hold them, or hold older ones): the runner then reuses those still
        current and scores the rest, instead of scoring every task again."""
        slug = self.slug_of(request)
        if self.output is None or self._folder is None or slug is None:
            return
        shown, written = ResultStore(self._folder), ResultStore(self.output)
        if shown.root.resolve() == written.root.resolve():
            return
        for task in self.tasks_of(request):
            result = shown.read(shown.path(slug, task))
            if result is not None and result.status == "ok" and result.model.revision == request.commit_sha:
                with atomic_path(written.path(slug, task)) as copy:  # as published, byte for byte
                    shutil.copyfile(shown.path(slug, task), copy)

    def state(self, tasks: list[str]) -> str:
        """The registry as these tasks are in it: each one's version and resolved params, and whether
    its data is on this backend."""
        if tuple(tasks) not in self._states:
            self._states[tuple(tasks)] = self._state(tasks)
        return self._states[tuple(tasks)]

    def _state(self, tasks: list[str]) -> str:
        described = []
        for name in tasks:
            task = self.registry.tasks[name]
            try:
                params = resolved_params(self.families[task.family], task.params)
            except (KeyError, ValueError):
                params = task.params
            described.append([name, task.version, params, self._here(name)])  # data that arrives is a new state
        return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()

    def _remembered(self, request_id: str) -> str | None:
        try:  # a regular file of one line: a FIFO or a folder under the name is no memory, never a wait
            return read_regular_file(self.memory / request_id, 100).decode("ascii", "replace").strip()
        except OSError:
            return None


def _owned_by(result: TaskResult, request: Request) -> bool:
    """Whether the result is of this request's weights (a Hub request: its commit; a local one: its
    weights' sha256), or says nothing of whose it is (a task skipped before the model was loaded)."""
    if request.commit_sha is not None:
        return result.model.revision in (None, request.commit_sha)
    return result.model.weights_sha256 in (None, request.weights_sha256)
