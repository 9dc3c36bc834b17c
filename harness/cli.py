"""The `harness` command. The one place that wires engine and task families together.

    harness run [--tasks all] [--model SPEC ...] [--include FILE ...]
    harness list [--include FILE ...]
    harness download TASK [TASK ...]
    harness leaderboard [--results DIR | --hub ORG/REPO] [--port N] [--host ADDR]
    harness push --repo ORG/REPO [--results DIR] [--private]  |  harness push --space ORG/NAME --repo ORG/REPO
    harness pull --repo ORG/REPO [--output DIR]
    harness submit CHECKPOINT --card card.yaml [--requests DIR]
    harness submit hf-hub:ORG/MODEL [--revision REV] --requests-repo ORG/REQUESTS [--tasks ...]
    harness queue run|list [--requests DIR | --requests-repo ORG/REQUESTS --results-repo ORG/RESULTS]
                           [--rescore-stale]
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from harness.errors import HarnessError
from harness.process_group import distributed_group, process_rank

from harness.models.card import DEFAULT_MAX_PARAMETERS

EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
COMPUTING_VERBS = ("run", "distill", "queue")  # those that train or embed: the allocator is set for tensors


class HarnessCLI:
    """Each public method is a verb; its arguments are declared in `build_parser`."""

    def _registry(self, args):
        from harness.registry import load_registry
        from harness.tasks import FAMILIES

        return load_registry([Path(p) for p in args.include], families=FAMILIES), FAMILIES

    def _context(self, args, writes: bool = True):
        """Where data and embeddings are. `writes`: the verb may write the cache, which must then be a
        folder (made if absent): a file in its place or an unusable path is one line now, not every
        task failing on it."""
        from harness.sources import DataContext
        from harness.sources.base import default_cache_dir

        cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
        if writes:
            flag = "--cache-dir" if args.cache_dir else "$HARNESS_CACHE" if os.environ.get("HARNESS_CACHE") else \
                "the default cache"
            refuse_unusable(cache, flag, "keep data and embeddings", "give a folder you can write to with --cache-dir")
        data_root = args.data_root or os.environ.get("HARNESS_DATA_ROOT") or cache / "data"
        return DataContext(cache_dir=cache, data_root=Path(data_root).expanduser())

    def run(self, args) -> int:
        from harness.hub_access import configure_offline_mode
        from harness.models.model_spec import DEFAULT_MODEL, LoadOptions, resolve_model
        from harness.results import ResultStore
        from harness.run_summary import print_summary
        from harness.runner import RunConfig, Runner

        if args.nproc and args.nproc > 1:
            return launch_torchrun(args.nproc)
        configure_offline_mode()
        registry, families = self._registry(args)
        task_names = registry.select(args.tasks)
        models = args.model or [DEFAULT_MODEL]
        for spec in models:
            resolve_model(spec)  # a usage error exits 2 now, not as a failure of every task
        ResultStore(Path(args.output)).check_writable()  # now, not after the work is done
        if args.device == "cuda":
            from harness.tile_embedding import resolve_device

            resolve_device("cuda")  # no CUDA device: a usage error now

        def extract_options():
            """Resolved when the first embedding is computed (it imports torch: a rerun that reuses
            every result starts in about a second without it)."""
            from harness.tile_embedding import ExtractOptions, resolve_device, resolve_precision, resolve_workers

            device = resolve_device(args.device)
            return ExtractOptions(batch_size=args.batch_size, num_workers=resolve_workers(args.workers, device),
                                  device=device, precision=resolve_precision(args.precision, device))

        config = RunConfig(
            models=models, tasks=task_names, output=Path(args.output), context=self._context(args),
            load=LoadOptions(random_init=args.random_init, max_parameters=args.max_parameters),
            extract=extract_options,
            overwrite=args.overwrite, download=args.download, verbose=args.verbose,
            dims=_dims(args.dims), log_samples=args.log_samples,
            precision=None if args.precision == "auto" else args.precision,
        )
        with distributed_group():
            outcomes = Runner(registry, families, config).run()
            if process_rank() != 0:
                return 0
        print_summary(outcomes, Path(args.output))
        return EXIT_TASK_FAILED if any(o.status == "failed" for o in outcomes) else 0

    def list(self, args) -> int:
        from harness.run_summary import print_registry

        registry, families = self._registry(args)
        print_registry(registry, families, self._context(args, writes=False))
        return 0

    def cache(self, args) -> int:
        from rich.table import Table
        from rich.text import Text

        from harness.cache_contents import embedding_entries, other_contents, per_model, remove, select, size_label
        from harness.sources.base import default_cache_dir
        from harness.terminal import stdout

        cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
        if cache_dir.exists() and not cache_dir.is_dir():  # listed as an empty cache before, without a word
            flag = "--cache-dir" if args.cache_dir else "$HARNESS_CACHE" if os.environ.get("HARNESS_CACHE") else \
                "the default cache"
            raise HarnessError(f"{flag} {cache_dir}: not a folder; give the cache folder `harness run` uses "
                               "($HARNESS_CACHE or ~/.cache/harness)")
        entries = embedding_entries(cache_dir)
        if args.action == "list":
            table = Table(title=f"embeddings in {cache_dir / 'embeddings'}")
            for column in ("model", "entries", "datasets", "size", "newest"):
                table.add_column(column, overflow="fold")
            for row in per_model(entries):
                table.add_row(Text(row["model"]), str(row["entries"]), Text(", ".join(row["datasets"])[:300]),
                              size_label(row["bytes"]), row["newest"].strftime("%Y-%m-%d") if row["newest"] else "")
            stdout.print(table)
            others = ", ".join(f"{name} {size_label(size)}" for name, size in other_contents(cache_dir))
            stdout.print(f"{len(entries)} embedding entries, {size_label(sum(e.bytes for e in entries))}"
                         + (f"; also {others}" if others else ""), markup=False, highlight=False)
            return 0
        if args.model is None and args.older_than is None and not args.unfinished:
            raise HarnessError("cache prune: say what to remove with --model NAME, --older-than DAYS or --unfinished "
                               "(`harness cache list` shows the models)")
        chosen = select(entries, args.model, args.older_than, args.unfinished)
        verb = "would remove" if args.dry_run else "removed"
        removed, left = (chosen, []) if args.dry_run else remove(chosen)
        for line in left:
            print(f"warning: {line}", file=sys.stderr)
        print(f"{verb} {len(removed)} embedding entries ({size_label(sum(e.bytes for e in removed))}) from "
              f"{cache_dir / 'embeddings'}")
        return 0

    def download(self, args) -> int:
        from harness.hub_access import configure_offline_mode
        from harness.sources import open_source

        configure_offline_mode()
        registry, _ = self._registry(args)
        context = self._context(args)
        datasets: dict[str, None] = {}
        for name in args.names:  # dataset names, or task / family / suite names
            names = [name] if name in registry.datasets else [registry.tasks[t].dataset for t in registry.select(name)]
            datasets.update(dict.fromkeys(names))
        for dataset in datasets:
            print(open_source(dataset, registry.datasets[dataset], context, registry.datasets).download())
        return 0


    def leaderboard(self, args) -> int:
        from importlib.util import find_spec

        spec = find_spec("harness.leaderboard.app")
        if spec is None or spec.origin is None:
            raise HarnessError("the leaderboard app (leaderboard/app.py) is missing from this installation")
        if find_spec("streamlit") is None:
            from harness.install_hints import install_extra

            raise HarnessError(f"the leaderboard needs Streamlit: {install_extra('app')}")
        env = dict(os.environ, HARNESS_RESULTS=str(Path(args.results).resolve()))
        if args.tasks:
            env["HARNESS_BOARD_TASKS"] = ",".join(self._registry(args)[0].select(args.tasks))
        if args.submissions:
            from harness.submission_service import LIMITS_ENV, limits_from_env, limits_text

            limits = limits_from_env(args.submissions, "--submissions")
            if limits is None or not args.requests_repo:
                raise HarnessError("leaderboard --submissions turns on the submission form of a Hub queue: give "
                                   "--requests-repo (and a token that can write it)")
            env[LIMITS_ENV] = limits_text(limits)
        for key, value in (("HARNESS_HUB_REPO", args.hub), ("HARNESS_REQUESTS_REPO", args.requests_repo),
                           ("HARNESS_REQUESTS", args.requests)):
            if value:
                env[key] = value
        command = [sys.executable, "-m", "streamlit", "run", spec.origin, "--server.port", str(args.port),
                   "--server.address", args.host, "--server.headless", "true",
                   "--browser.gatherUsageStats", "false"]
        print(f"leaderboard of {args.hub or args.results} at http://{args.host}:{args.port}", file=sys.stderr,
              flush=True)
        # the server replaces this process: a signal to `harness leaderboard` reaches Streamlit itself
        os.execve(sys.executable, command, env)

    def push(self, args) -> int:
        from harness.leaderboard.hub_results import push_results

        if args.space:
            from harness.leaderboard.space import default_source, push_space

            board_tasks = self._registry(args)[0].select(args.tasks) if args.tasks else None
            source = args.source or default_source()
            url = push_space(args.space, args.repo, source, requests_repo=args.requests_repo, private=args.private,
                             board_tasks=board_tasks, submissions=args.submissions)
            print(f"Docker Space {args.space} (reading dataset {args.repo}; harness from {source}"
                  + (f"; ranking on {len(board_tasks)} declared tasks" if board_tasks else "")
                  + (f"; submission form filing into {args.requests_repo} (its HF_TOKEN secret must be able to write "
                     "it)" if args.submissions else "") + f") uploaded: {url}")
        else:
            if args.tasks:
                raise HarnessError("push --tasks declares a Space's tasks: give it with --space (every result file "
                                   "in --results is pushed)")
            if args.submissions:
                raise HarnessError("push --submissions turns on a Space's submission form: give it with --space")
            url, n = push_results(Path(args.results), args.repo, private=args.private,
                                  log=lambda line: print(line, file=sys.stderr))
            print(f"{n} result files and the leaderboard table pushed to dataset {args.repo}: {url}")
        return 0

    def submit(self, args) -> int:
        from harness.submissions import RequestStore, submit

        if args.checkpoint.startswith("hf-hub:"):
            return self._submit_hub(args)
        if args.card is not None:
            card = Path(args.card)
        else:  # the card beside the weights, found as `run --model PATH` finds it (or what to write, in one line)
            from harness.models.weight_files import locate_checkpoint

            _, card = locate_checkpoint(Path(args.checkpoint))
        self._registry(args)[0].select(args.tasks)  # an unknown task is refused now, not at `queue run`
        refuse_unusable(self._requests(args), "--requests", "keep the queue")  # was a FileExistsError traceback
        request = submit(Path(args.checkpoint), card, RequestStore(self._requests(args)), args.tasks)
        print(f"{request.id}: PENDING (weights sha256 {request.weights_sha256[:12]}, {request.embed_dim}-d, "
              f"{request.n_parameters:,} parameters); score it with `harness queue run`")
        return 0

    def _submit_hub(self, args) -> int:
        from harness.hub_queue import HubRequestStore, submit_from_hub

        if not args.requests_repo:
            raise HarnessError(f"{args.checkpoint}: a Hub submission needs --requests-repo ORG/REQUESTS (the queue's "
                               "dataset)")
        registry, _ = self._registry(args)
        registry.select(args.tasks)  # unknown tasks are refused before anything is written
        request = submit_from_hub(args.checkpoint.removeprefix("hf-hub:"), args.revision,
                                  HubRequestStore(args.requests_repo), args.tasks)
        print(f"{request.id}: PENDING in {args.requests_repo} ({request.hub_id} at commit {request.commit_sha}, "
              f"tasks {request.tasks})")
        return 0

    def queue(self, args) -> int:
        import tempfile

        from rich.table import Table
        from rich.text import Text

        from harness.terminal import stdout
        from harness.submissions import RequestStore, queue_table, run_queue

        if args.requests_repo and args.rescore_stale and not args.results_repo:
            raise HarnessError(f"queue {args.action} --requests-repo --rescore-stale: give --results-repo ORG/RESULTS, "
                               "whose results are judged")
        if args.action == "run":
            from harness.results import ResultStore

            ResultStore(Path(args.output)).check_writable()
            self._context(args)  # a cache that cannot be a folder is refused now, not as every request's failure
        self._queue_outcomes = []  # what this `queue run` scored: its main scores are printed at the end
        with tempfile.TemporaryDirectory() as shown:  # a Hub queue's results, read there when first needed
            rescoring = self._rescoring(args, Path(shown))
            if args.requests_repo:
                if args.action == "run":
                    self._run_hub_queue(args, rescoring)
                where = f"dataset {args.requests_repo}"
            else:
                store = RequestStore(self._requests(args))
                if store.root.exists() and not store.root.is_dir():
                    raise HarnessError(f"--requests {store.root}: not a folder; give the folder `harness submit "
                                       "--requests` keeps the queue in")
                if not (store.root / "requests").is_dir():  # a typo in a cron line scored nothing, without a word
                    plain_log(f"note: no request was ever submitted to {store.root} (no requests/ folder there); "
                              f"`harness submit CHECKPOINT --card card.yaml --requests {store.root}` files one")
                if args.action == "run":
                    run_queue(store, lambda request, checkpoint: self._score_request(
                        args, request, checkpoint, store.embeddings_dir(request.id)),
                              log=plain_log, keep_embeddings=args.keep_embeddings, rescoring=rescoring)
                where = str(store.root)
            # `queue list --rescore-stale`: which finished requests a run would score again, and why
            due = rescoring.why if rescoring is not None and args.action == "list" else None
            rows = queue_table(args.requests_repo, None if args.requests_repo else store.root, due=due)
        if self._queue_outcomes:  # the scores of the requests this run took, then every request's state
            from harness.run_summary import print_summary

            print_summary(self._queue_outcomes, Path(args.output))
        table = Table(title=Text(f"requests in {where}"))  # names, reasons and paths are data: text, not markup
        columns = ("model", "revision", "status", *(("queued",) if args.requests_repo else ()), "tasks", "attempts",
                   "updated", "reason", *(("rescore",) if due is not None else ()))
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(str(row[c])) if row[c] is not None else "" for c in columns))
        stdout.print(table)
        if due is not None:  # the cost of a protocol change, before it is spent
            finished, rescored = (sum(1 for row in rows if row["status"] == "FINISHED"),
                                  sum(1 for row in rows if row["rescore"]))
            stdout.print(f"{rescored} of {finished} finished request(s) would be scored again by `harness queue run "
                         "--rescore-stale`", markup=False, highlight=False)
        return EXIT_TASK_FAILED if args.action == "run" and any(r["status"] == "FAILED" for r in rows) else 0

    def _run_hub_queue(self, args, rescoring) -> None:
        import socket

        from harness.hub_queue import HubRequestStore, run_hub_queue
        from harness.models.model_spec import model_slug
        from harness.submissions import request_embeddings_dir
        from harness.terminal import console
        from harness.leaderboard.hub_results import push_model_results

        if not args.results_repo:
            raise HarnessError("queue run --requests-repo: give --results-repo ORG/RESULTS, where results are pushed")
        output = Path(args.output)

        def publish(request) -> None:
            slug = model_slug(request.hub_id, "checkpoint")
            n = push_model_results(output, {slug}, args.results_repo, log=plain_log)
            console.print(f"{request.id}: {n} result files pushed to {args.results_repo}")

        workdir = self._workdir(args)
        run_hub_queue(HubRequestStore(args.requests_repo), args.backend_id or socket.gethostname(), workdir,
                      lambda request, checkpoint: self._score_request(
                          args, request, checkpoint, request_embeddings_dir(workdir, request.id)),
                      publish, log=plain_log, keep_embeddings=args.keep_embeddings, rescoring=rescoring)

    def _workdir(self, args) -> Path:
        """A Hub backend's own folder: downloaded checkpoints, each request's embeddings, its counts."""
        return Path(args.workdir or self._requests(args))

    def _rescoring(self, args, shown: Path):
        """`queue run|list --rescore-stale`: which finished requests to score again (harness/rescoring.py),
        judged on the results the board shows: a Hub queue's results dataset (pulled into `shown` when
        first needed), a folder queue's --output. A listing writes nothing (record=False)."""
        if not args.rescore_stale:
            return None
        from harness.models.model_spec import model_slug
        from harness.rescoring import Rescoring
        from harness.submissions import RequestStore

        registry, families = self._registry(args)

        def tasks_of(request) -> list[str]:
            try:
                return registry.select(args.tasks or request.tasks)
            except HarnessError:  # a task the registry no longer has: the request is not judged
                return []

        context = self._context(args, writes=False)

        def available(name: str) -> bool:  # a result skipped for want of this data is out of date once it is here
            from harness.sources import open_source

            task = registry.tasks[name]
            try:
                return all(open_source(d, registry.datasets[d], context, registry.datasets).availability().ok
                           for d in (task.dataset, task.test_dataset) if d)
            except Exception:  # noqa: BLE001 - data that cannot be looked at is not here
                return False

        if args.requests_repo:
            def published() -> Path:
                from harness.leaderboard.hub_results import pull_results

                _, skipped = pull_results(args.results_repo, shown, tasks=set(registry.tasks))
                for line in skipped:
                    plain_log(f"warning: {args.results_repo}: {line}")
                return shown

            return Rescoring(registry, families, tasks_of, lambda request: model_slug(request.hub_id, "checkpoint"),
                             published, self._workdir(args) / "judged", output=Path(args.output), log=plain_log,
                             record=args.action == "run", available=available)
        store = RequestStore(self._requests(args))
        return Rescoring(registry, families, tasks_of, lambda request: _local_slug(store.checkpoint_dir(request.id)),
                         lambda: Path(args.output), store.root / "judged", log=plain_log, record=args.action == "run",
                         available=available)

    @staticmethod
    def _requests(args) -> Path:
        return Path(args.requests or os.environ.get("HARNESS_REQUESTS") or "requests")

    def _score_request(self, args, request, checkpoint: Path, embeddings: Path) -> dict:
        from harness.tile_embedding import default_extract_options, resolve_device
        from harness.hub_access import configure_offline_mode
        from harness.models.model_spec import LoadOptions
        from harness.runner import RunConfig, Runner

        configure_offline_mode()
        registry, families = self._registry(args)
        device = resolve_device("auto")
        config = RunConfig(models=[str(checkpoint)], tasks=registry.select(args.tasks or request.tasks),
                           output=Path(args.output), context=replace(self._context(args), embeddings_dir=embeddings),
                           load=LoadOptions(device=device, max_parameters=args.max_parameters),
                           extract=default_extract_options(device))
        outcomes = Runner(registry, families, config).run()
        self._queue_outcomes.extend(outcomes)
        return {o.task: (o.status, o.reason) for o in outcomes}

    def distill(self, args) -> int:
        from harness.distillers.config import read_config
        from harness.distillers.run import distill
        from harness.tile_embedding import default_extract_options, resolve_device
        from harness.hub_access import configure_offline_mode

        configure_offline_mode()
        config = read_config(Path(args.config) if args.config else None, args.teacher, args.set)
        untrained = [t.model for t in config.teachers if t.random_init]
        if args.score and untrained:  # checked before training, not after
            raise HarnessError(f"--score: teacher {untrained[0]} has random_init (a speed-only setting) and cannot "
                               "be scored as a teacher; drop --score or the random_init")
        registry, families = self._registry(args)
        out = Path(args.output)
        refuse_unusable(out, "--output", "write the student")  # now, not at the first checkpoint
        if args.score:
            from harness.results import ResultStore

            scored = registry.select(args.score)  # an unknown task is refused now, not after training
            ResultStore(Path(args.results)).check_writable("--results")  # nor a results folder it cannot write
            from harness.distillers.scoring import DISTIL_ELSEWHERE, tasks_on_distillation_images

            seen = tasks_on_distillation_images(registry, families, scored, config.dataset, config.splits,
                                                self._context(args))
            if seen:  # said while the student can still be distilled on other data
                taken = f"its splits {', '.join(config.splits)}" if config.splits else "every split"
                plain_log(f"warning: --score {', '.join(seen)}: these tasks score images of {config.dataset}, "
                          f"which the student is distilled on ({taken}); "
                          f"their retention will be reported but left out of the medians. {DISTIL_ELSEWHERE}")
        device = resolve_device(args.device)
        extract = default_extract_options(device)
        with distributed_group(), student_folder_lock(out):
            record = distill(config, out, registry, self._context(args), extract)
            if process_rank() != 0:
                return 0
        print(f"student written to {out} ({record['steps']} steps, loss {record['loss_first']:.3f} -> "
              f"{record['loss_last']:.3f})")
        if args.score:
            return self._score_student(args, config, out, record, extract)
        return 0

    def _score_student(self, args, config, student_dir: Path, record: dict, extract) -> int:
        """Teachers and student scored as `harness run` scores them, on the distillation's device
        with its precision and workers (not the runner's bare defaults: the CPU in fp32)."""
        from harness.distillers.scoring import compare, distilled_on, report_path, tasks_on_distillation_images
        from harness.models.model_spec import LoadOptions, resolve_model
        from harness.run_summary import print_retention, print_summary
        from harness.runner import RunConfig, Runner

        registry, families = self._registry(args)
        tasks = registry.select(args.score)
        teachers = [t.model for t in config.teachers]
        run = RunConfig(models=[*teachers, str(student_dir)], tasks=tasks, output=Path(args.results),
                        context=self._context(args), load=LoadOptions(device=extract.device), extract=extract)
        outcomes = Runner(registry, families, run).run()
        print_summary(outcomes, Path(args.results))
        folders = {outcome.model: outcome.slug for outcome in outcomes if outcome.slug}
        student_name = config.name or student_dir.name
        teacher_slugs = {t: folders.get(t, resolve_model(t).slug) for t in teachers}
        student_slug = folders.get(student_name, resolve_model(str(student_dir)).slug)
        seen = tasks_on_distillation_images(registry, families, tasks, *distilled_on(record), self._context(args))
        report = compare(Path(args.results), student_slug, teacher_slugs, tasks, record, on_training_images=seen)
        print_retention(report, report_path(Path(args.results), student_slug))
        return 0

    def pull(self, args) -> int:
        from harness.leaderboard.hub_results import pull_results
        from harness.results import ResultStore

        ResultStore(Path(args.output)).check_writable()  # before the download, not a traceback at the first copy
        n, skipped = pull_results(args.repo, Path(args.output), revision=args.revision)
        for line in skipped:
            print(f"warning: {line}", file=sys.stderr)
        print(f"{n} result files from dataset {args.repo} in {args.output}")
        return 0


def refuse_unusable(folder: Path, flag: str, what: str, how: str = "give a folder you can write to") -> None:
    """HarnessError (one line naming `flag` and the folder) when `folder` cannot be a folder to
    `what` in; nothing is created. A folder that exists may be read-only (a run that finds all it
    needs there only reads it); one that does not must be makeable in the nearest folder above it
    that exists."""
    above = folder.absolute()
    while not above.exists() and above != above.parent:
        above = above.parent
    why = (f"{above} is a file, not a folder" if not above.is_dir() else
           f"{above} is not writable" if above != folder.absolute() and not os.access(above, os.W_OK | os.X_OK)
           else None)
    if why:
        raise HarnessError(f"{flag} {folder}: cannot {what} there ({why}); {how}")


def _local_slug(checkpoint: Path) -> str | None:
    """The results folder of a local request's checkpoint (its card's name); None if it cannot be read now."""
    from harness.models.model_spec import resolve_model

    try:
        return resolve_model(str(checkpoint)).slug
    except Exception:  # noqa: BLE001 - a request the queue cannot place is not judged; the queue goes on
        return None


def plain_log(text: str) -> None:
    """A queue backend's log line: request ids, reasons and tracebacks are data, printed as they are
    (no rich markup read in them)."""
    from harness.terminal import console

    console.print(text, markup=False, highlight=False)


def whole_number(low: int, high: int | None = None):
    """argparse type: a whole number in [low, high] (a batch size of 0 or -1 is a usage error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value}: give {low} or more" if high is None
                                             else f"{value}: give {low} to {high}")
        return value

    return parse


def hub_repo(text: str) -> str:
    """argparse type: a Hub repository id, ORG/NAME (huggingface_hub's own check of one raised a
    traceback from deep in the client)."""
    from harness.submissions import is_hub_id

    if not is_hub_id(text):
        raise argparse.ArgumentTypeError(f"'{text[:100]}' is not a Hub repository id: give ORG/NAME")
    return text


worker_count = whole_number(0, 64)  # DataLoader workers: 0 decodes in the main process
batch_size = whole_number(1, 16384)  # a larger batch holds a whole dataset's tiles in memory at once
process_count = whole_number(1, 64)  # --nproc: processes torchrun starts on this machine


def parameter_count(text: str) -> int:
    """--max-parameters: 3e9, 3000000000 or 3B / 500M."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a parameter count (e.g. 3e9 or 3B)") from None
    if not 1 <= value <= 1e13:
        raise argparse.ArgumentTypeError(f"'{text}': give a count between 1 and 1e13")
    return int(value)


def days(text: str) -> float:
    """--older-than: a number of days, 0 or more (not NaN, which every age would pass)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of days") from None
    if not 0 <= value <= 1e5:  # False for NaN too
        raise argparse.ArgumentTypeError(f"'{text}': give a number of days from 0 to 100000")
    return value


def _dims(text: str | None) -> list[int] | None:
    """--dims 64,128,full -> [64, 128, None]: the full embedding is `full` (default: full only)."""
    if not text:
        return None
    try:
        dims = [None if part.strip() == "full" else int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HarnessError(f"--dims {text}: give comma-separated dimensions, e.g. 64,128,full") from None
    if any(d is not None and d < 1 for d in dims):  # 0 scored no dims at chance, -5 all but the last 5
        raise HarnessError(f"--dims {text}: each dimension is 1 or more (or full), e.g. 64,128,full")
    return list(dict.fromkeys(dims))  # each once: 64,64 scored the same truncation twice


def launch_torchrun(nproc: int) -> int:
    """`harness run --nproc N ...` = `torchrun --nproc_per_node N -m harness run ...` (without --nproc)."""
    import subprocess

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if not arg.startswith("--nproc="):
            argv.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "harness", *argv]
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    cli = HarnessCLI()
    from harness import __version__

    parser = argparse.ArgumentParser(prog="harness", description="Benchmark pathology foundation models.")
    parser.add_argument("--version", action="version", version=f"pathology-harness {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def common(sub):
        sub.add_argument("--include", action="append", default=[], metavar="FILE",
                         help="extra YAML of datasets/tasks/suites (same schema as tasks.yaml); repeatable")
        sub.add_argument("--cache-dir", help="embeddings and generated data (default $HARNESS_CACHE or ~/.cache/harness)")
        sub.add_argument("--data-root", help="root of user-provided datasets (default $HARNESS_DATA_ROOT or <cache>/data)")

    run = verbs.add_parser("run", help="score models on tasks")
    run.add_argument("--tasks", default="all", help="comma-separated task, family or suite names, or all")
    run.add_argument("--model", action="append", metavar="SPEC",
                     help="timm:<name>, hf-hub:<org>/<repo>, a known model, a checkpoint path, "
                          "random-noise or synth-oracle; repeatable (default: timm:vit_tiny_patch16_224)")
    run.add_argument("--output", default="results", help="results folder (default ./results)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="encoder forward precision; auto = bf16 where the hardware has native bf16 "
                          "(CUDA, AVX512-BF16/AMX CPUs), else fp32")
    run.add_argument("--batch-size", type=batch_size, default=32)
    run.add_argument("--workers", type=worker_count, default=None, metavar="N",
                     help="DataLoader workers that decode and resize tiles (default: none on CPU, where the "
                          "model's threads already use every core; up to 8 on CUDA)")
    run.add_argument("--dims", help="also score embeddings truncated to these dims (Matryoshka students), "
                                    "e.g. 64,128,full; results go to <model>-d<k>/ (named <model>@<k>d)")
    run.add_argument("--max-parameters", type=parameter_count, default=DEFAULT_MAX_PARAMETERS, metavar="N",
                     help="refuse a checkpoint card whose architecture has more parameters (checked on the meta "
                          "device before anything is allocated; default 2.5B; e.g. 5e9 or 5B)")
    run.add_argument("--nproc", type=process_count, help="processes to split slide extraction across (launches torchrun; "
                                                "gloo on CPU)")
    run.add_argument("--random-init", action="store_true", help="score untrained weights (labelled random-init)")
    run.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    run.add_argument("--log-samples", action="store_true",
                     help="also write each result's per-item predictions beside it (<task>.samples.parquet), "
                          "for paired comparisons of two models")
    run.add_argument("--download", action="store_true", help="fetch missing Hub datasets first")
    run.add_argument("--verbose", action="store_true", help="print tracebacks of failed tasks")
    common(run)
    run.set_defaults(handler=cli.run)

    listing = verbs.add_parser("list", help="tasks, families, suites and models")
    common(listing)
    listing.set_defaults(handler=cli.list)

    download = verbs.add_parser("download", help="fetch the data of tasks (Hub datasets)")
    download.add_argument("names", nargs="+", metavar="NAME", help="dataset, task, family or suite names")
    common(download)
    download.set_defaults(handler=cli.download)

    cache = verbs.add_parser("cache", help="list the cached embeddings per model (list), or remove some (prune)")
    cache.add_argument("action", choices=["list", "prune"])
    cache.add_argument("--model", metavar="NAME", help="prune: the entries of this model (as `cache list` names it)")
    cache.add_argument("--older-than", type=days, metavar="DAYS", help="prune: entries created more than DAYS ago")
    cache.add_argument("--unfinished", action="store_true",
                       help="prune: entries an interrupted extraction left unfinished (a rerun would resume them)")
    cache.add_argument("--dry-run", action="store_true", help="prune: say what would be removed, remove nothing")
    cache.add_argument("--cache-dir", help="the cache (default $HARNESS_CACHE or ~/.cache/harness)")
    cache.set_defaults(handler=cli.cache)

    board = verbs.add_parser("leaderboard", help="browse results in the Streamlit app")
    board.add_argument("--results", default="results", help="results folder (default ./results)")
    board.add_argument("--port", type=whole_number(1, 65535), default=8501)
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    board.add_argument("--hub", metavar="ORG/REPO", help="read a results dataset on the Hub instead")
    board.add_argument("--requests-repo", type=hub_repo, metavar="ORG/REQUESTS", help="show this Hub submission queue")
    board.add_argument("--requests", help="or show this local requests folder")
    board_tasks_help = ("declare the board's tasks (task, family or suite names, or all): only models with a valid "
                        "score on every one are ranked, and no other task is shown")
    board.add_argument("--tasks", help=board_tasks_help)
    board.add_argument("--submissions", nargs="?", const="on", metavar="LIMITS",
                       help="with --requests-repo: a submission form in the Queue tab, filing requests with this "
                            "process's Hub token; LIMITS: on (default) or per_namespace=5,period_days=7,waiting=100")
    board.add_argument("--include", action="append", default=[], metavar="FILE",
                       help="extra YAML of tasks/suites that --tasks may name")
    board.set_defaults(handler=cli.leaderboard)

    push = verbs.add_parser("push", help="upload results (or the leaderboard Space) to the Hugging Face Hub")
    push.add_argument("--repo", required=True, type=hub_repo, metavar="ORG/REPO", help="results dataset repository")
    push.add_argument("--results", default="results", help="results folder (default ./results)")
    push.add_argument("--space", type=hub_repo, metavar="ORG/NAME",
                      help="publish the leaderboard app as a Docker Space reading --repo, instead of pushing results")
    push.add_argument("--source", help="with --space: where the Space pip-installs the harness from (default: "
                                       "git+<origin>@<HEAD commit> of this checkout)")
    push.add_argument("--requests-repo", type=hub_repo, metavar="ORG/REQUESTS",
                      help="with --space: the queue its Queue tab shows")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--tasks", help="with --space: " + board_tasks_help)
    push.add_argument("--submissions", nargs="?", const="on", metavar="LIMITS",
                      help="with --space and --requests-repo: the Queue tab's submission form, filing requests with "
                           "the Space's HF_TOKEN (which must be able to write the requests dataset); LIMITS: on "
                           "(default) or per_namespace=5,period_days=7,waiting=100")
    push.add_argument("--include", action="append", default=[], metavar="FILE",
                      help="extra YAML of tasks/suites that --tasks may name")
    push.set_defaults(handler=cli.push)

    submission = verbs.add_parser("submit", help="validate a checkpoint and add it to the submission queue")
    submission.add_argument("checkpoint", help="hf-hub:ORG/MODEL (a Hub model repo with safetensors weights and "
                                               "card.yaml), or a local weights file / folder")
    submission.add_argument("--card", help="local submissions: model card (architecture, pooling, embed_dim, name; "
                            "default: the card.yaml beside the weights, as `run --model PATH` reads it)")
    submission.add_argument("--revision", help="hf-hub: a branch, tag or commit (default main); pinned to its commit")
    submission.add_argument("--requests-repo", type=hub_repo, metavar="ORG/REQUESTS",
                            help="hf-hub: the queue's Hub dataset")
    submission.add_argument("--tasks", default="all", help="what the request is scored on (default all)")
    submission.add_argument("--requests", help="local queue folder (default $HARNESS_REQUESTS or ./requests)")
    common(submission)
    submission.set_defaults(handler=cli.submit)

    queue = verbs.add_parser("queue", help="score pending submissions (run) or show them (list)")
    queue.add_argument("action", choices=["run", "list"])
    queue.add_argument("--requests", help="requests folder (default $HARNESS_REQUESTS or ./requests)")
    queue.add_argument("--tasks", help="override each request's tasks")
    queue.add_argument("--max-parameters", type=parameter_count, default=DEFAULT_MAX_PARAMETERS, metavar="N",
                       help="refuse a submitted card whose architecture has more parameters (default 2.5B)")
    queue.add_argument("--output", default="results", help="results folder (default ./results)")
    queue.add_argument("--requests-repo", type=hub_repo, metavar="ORG/REQUESTS",
                       help="a Hub requests dataset instead of a folder")
    queue.add_argument("--results-repo", type=hub_repo, metavar="ORG/RESULTS",
                       help="with --requests-repo: push results here")
    queue.add_argument("--backend-id", help="this backend's name in claims (default the host name); a restarted "
                                            "backend resumes its own RUNNING claims")
    queue.add_argument("--workdir", help="with --requests-repo: where downloaded checkpoints and each request's "
                                         "embeddings go, deleted once it is scored (default $HARNESS_REQUESTS or "
                                         "./requests)")
    queue.add_argument("--rescore-stale", action="store_true",
                       help="run: after the waiting requests, score again each finished one whose results are stale "
                            "(its tasks' version or params moved on) or missing for a task it is scored on now; once "
                            "per state of the registry; and one whose task was skipped for want of data that is here "
                            "now. list: show which a run would score again, and why")
    queue.add_argument("--keep-embeddings", action="store_true",
                       help="keep each scored request's embeddings (computed in embeddings/<request> under --workdir, or "
                            "--requests for a local queue); by default they are deleted when it ends, so that the "
                            "backend's disk does not fill")
    common(queue)
    queue.set_defaults(handler=cli.queue)

    distil = verbs.add_parser("distill", help="distil teachers into a small student (distillers/)")
    distil.add_argument("--config", help="distill.yaml (see distillers/config.py); the flags below override it")
    distil.add_argument("--teacher", action="append", metavar="MODEL", help="a teacher (repeat for several); "
                        "replaces the config's teachers")
    distil.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. --set steps=100 "
                        "--set method=multi_teacher --set matryoshka_dims=[32,64] (repeatable)")
    distil.add_argument("--output", required=True, help="the student directory to write")
    distil.add_argument("--score", metavar="TASKS", help="then score teachers and student on these tasks")
    distil.add_argument("--results", default="results", help="results folder for --score (default ./results)")
    distil.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    common(distil)
    distil.set_defaults(handler=cli.distill)

    pull = verbs.add_parser("pull", help="download results from a Hub dataset")
    pull.add_argument("--repo", required=True, type=hub_repo, metavar="ORG/REPO")
    pull.add_argument("--output", default="results", help="results folder (default ./results)")
    pull.add_argument("--revision", help="a commit, branch or tag (default main)")
    pull.set_defaults(handler=cli.pull)
    return parser


@contextmanager
def student_folder_lock(out: Path) -> Iterator[None]:
    """One `harness distill` at a time writes a student folder (rank 0 holds the lock; torchrun's
    other ranks share its run). Two at once each resumed from and overwrote the other's checkpoint,
    and the folder could end with one's weights beside the other's card."""
    if process_rank() != 0:
        yield
        return
    from filelock import FileLock, Timeout

    made = [folder for folder in (out, out / "checkpoint") if not folder.exists()]
    (out / "checkpoint").mkdir(parents=True, exist_ok=True)
    path = out / "checkpoint" / "lock"
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise HarnessError(f"{out}: another harness distill is writing this student folder (it holds {path}): wait "
                           "for it to end, or use another --output") from None
    try:
        yield
    finally:
        lock.release()
        path.unlink(missing_ok=True)
        for folder in reversed(made):  # a run refused before its first checkpoint leaves nothing behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.handler.__name__ in COMPUTING_VERBS:
            from harness.memory_allocator import keep_freed_memory

            keep_freed_memory()
        return args.handler(args)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        kept = ("the student's last checkpoint (one every checkpoint_every steps) and finished embedding shards are "
                "kept; rerun the same command to resume" if args.handler.__name__ == "distill" else
                "finished embedding shards and results are kept; rerun to resume")
        print(f"interrupted: {kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
