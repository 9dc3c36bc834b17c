"""The `harness` command. The one place that wires engine and task families together.

    harness run [--tasks all] [--model SPEC ...] [--include FILE ...]
    harness list [--include FILE ...]
    harness download TASK [TASK ...]
    harness leaderboard [--results DIR] [--port N] [--host ADDR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import HarnessError

EXIT_TASK_FAILED = 1
EXIT_USAGE = 2


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness")).expanduser()


class HarnessCLI:
    """Each public method is a verb; its arguments are declared in `build_parser`."""

    def _registry(self, args):
        from harness.registry import load_registry
        from tasks import FAMILIES

        return load_registry([Path(p) for p in args.include], families=FAMILIES), FAMILIES

    def _context(self, args):
        from harness.sources import DataContext

        cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
        data_root = args.data_root or os.environ.get("HARNESS_DATA_ROOT") or cache / "data"
        return DataContext(cache_dir=cache, data_root=Path(data_root).expanduser())

    def run(self, args) -> int:
        from harness.extraction import ExtractOptions, resolve_device
        from harness.hub_access import configure_offline_mode
        from harness.models.loading import DEFAULT_MODEL, LoadOptions, check_model_spec
        from harness.run_summary import print_summary
        from harness.runner import RunConfig, Runner

        configure_offline_mode()
        registry, families = self._registry(args)
        task_names = registry.select(args.tasks)
        models = args.model or [DEFAULT_MODEL]
        for spec in models:
            check_model_spec(spec)
        device = resolve_device(args.device)
        config = RunConfig(
            models=models, tasks=task_names, output=Path(args.output), context=self._context(args),
            load=LoadOptions(random_init=args.random_init, device=device),
            extract=ExtractOptions(batch_size=args.batch_size, num_workers=args.workers, device=device),
            overwrite=args.overwrite, download=args.download, verbose=args.verbose,
        )
        outcomes = Runner(registry, families, config).run()
        print_summary(outcomes, Path(args.output))
        return EXIT_TASK_FAILED if any(o.status == "failed" for o in outcomes) else 0

    def list(self, args) -> int:
        from harness.run_summary import print_registry

        registry, families = self._registry(args)
        print_registry(registry, families, self._context(args))
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
            print(open_source(dataset, registry.datasets[dataset], context).download())
        return 0


    def leaderboard(self, args) -> int:
        import subprocess

        app = Path(__file__).resolve().parent.parent / "leaderboard" / "app.py"
        if not app.exists():
            raise HarnessError(f"{app}: the leaderboard app is missing from this installation")
        try:
            import streamlit  # noqa: F401
        except ImportError:
            raise HarnessError("the leaderboard needs Streamlit: pip install -e '.[app]'") from None
        env = dict(os.environ, HARNESS_RESULTS=str(Path(args.results).resolve()))
        command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
                   "--server.address", args.host, "--server.headless", "true",
                   "--browser.gatherUsageStats", "false"]
        print(f"leaderboard of {args.results} at http://{args.host}:{args.port}", file=sys.stderr)
        return subprocess.call(command, env=env)


def build_parser() -> argparse.ArgumentParser:
    cli = HarnessCLI()
    parser = argparse.ArgumentParser(prog="harness", description="Benchmark pathology foundation models.")
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
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="DataLoader workers")
    run.add_argument("--random-init", action="store_true", help="score untrained weights (labelled random-init)")
    run.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
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

    board = verbs.add_parser("leaderboard", help="browse results in the Streamlit app")
    board.add_argument("--results", default="results", help="results folder (default ./results)")
    board.add_argument("--port", type=int, default=8501)
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    board.set_defaults(handler=cli.leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished embedding shards and results are kept; rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
