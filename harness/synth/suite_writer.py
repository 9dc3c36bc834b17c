"""Writing a generated dataset: tiles (one folder per split: images.npy, labels.npy, latents.npy)
or any other layout (slides) through `build_atomically`.

Rendering runs in worker processes that fill memory-mapped image arrays; the dataset is built
under a temporary name and renamed when complete, so an interrupted generation is simply redone.
meta.json records the size of every file it wrote; a finished dataset whose files no longer match
it, or (tiles) whose arrays no longer read back as it says (cut short on a full disk, overwritten by
hand), is named in a warning and generated again (`discard_if_damaged`).
A disk without room for the images is refused before rendering; a worker that dies (a memory-mapped
page that cannot be written when the disk fills up meanwhile is SIGBUS) ends the generation with
one line, and the temporary folder is removed.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from filelock import FileLock
from numpy.lib.format import open_memmap

from harness.bounded_read import read_json
from harness.errors import HarnessError, one_line
from harness.progress import progress_bar
from harness.terminal import console

TILE_ARRAYS = ("images.npy", "labels.npy", "latents.npy")  # per split; masks.npy too where the dataset has masks
MAX_META_BYTES = 64_000_000  # meta.json lists every file (two per synthetic slide)


def write_suite(
    target: Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],  # split -> (labels, latents)
    tile_size: int,
    render_job: Callable[[Path, Any], int],  # (temporary folder, job) -> tiles rendered
    jobs: Sequence[Any],
    meta: dict,
    workers: int | None = None,
    masks: bool = False,
) -> None:
    """A tile dataset: memory-mapped images (and with `masks`, (N, H, W) uint8 masks) filled by
    the workers, labels and latents per split."""

    def allocate(folder: Path) -> None:
        for split, (labels, latents) in splits.items():
            (folder / split).mkdir(parents=True)
            open_memmap(folder / split / "images.npy", mode="w+", dtype=np.uint8,
                        shape=(len(labels), tile_size, tile_size, 3)).flush()
            if masks:
                open_memmap(folder / split / "masks.npy", mode="w+", dtype=np.uint8,
                            shape=(len(labels), tile_size, tile_size)).flush()
            np.save(folder / split / "labels.npy", np.asarray(labels, np.int64))
            np.save(folder / split / "latents.npy", np.asarray(latents, np.float32))

    total = sum(len(labels) for labels, _ in splits.values())
    meta = {**meta, "splits": {s: len(labels) for s, (labels, _) in splits.items()}}
    build_atomically(target, allocate, render_job, jobs, total, meta, workers,
                     needed_bytes=total * (tile_size * tile_size * (4 if masks else 3) + 4 * 64))


def discard_if_damaged(target: Path) -> None:
    """A finished generated dataset that does not read back whole loses its meta.json, with a
    warning naming it, so that the next build generates it again (deterministic: the same tiles and
    slides). A tile dataset failed every later run on it with numpy's 'mmap length is greater than
    file size', naming no file; a slide cut short dropped out of every later model's cohort."""
    if not (target / "meta.json").exists():
        return
    reason = _damage(target)
    if reason is None:
        return
    console.print(f"[yellow]warning[/yellow] {target}: generated data that cannot be read ({reason}); "
                  "generating it again")
    meta = target / "meta.json"
    try:
        shutil.rmtree(meta) if meta.is_dir() and not meta.is_symlink() else meta.unlink(missing_ok=True)
    except OSError as error:
        raise HarnessError(f"{target}: generated data that cannot be read, nor marked unfinished "
                           f"({error.strerror or error}); remove that folder and run again") from None


def _damage(target: Path) -> str | None:
    """Why the finished dataset at `target` does not read back as its meta.json says; None if it does.
    Files are checked by size (meta.json's `files`; older datasets have none); a tile dataset's arrays
    are also opened memory-mapped: their headers and lengths are checked, not their pixels."""
    try:
        meta = read_json(target / "meta.json", MAX_META_BYTES, "generated dataset's meta.json")
    except (OSError, ValueError) as error:
        return f"meta.json: {error}"
    if not isinstance(meta, dict):
        return "meta.json is not an object"
    files = meta.get("files", {})
    if not isinstance(files, dict):
        return "meta.json's files is not a mapping"
    for name, size in files.items():
        if not isinstance(size, int) or Path(name).is_absolute() or ".." in Path(name).parts:
            return f"meta.json lists {name[:100]!r} as {str(size)[:20]}"  # a hand's edit: not looked up
        try:
            found = (target / name).stat().st_size
        except OSError as error:
            return f"{name}: {error.strerror or error}"
        if found != size:
            return f"{name} has {found:,} bytes, meta.json says {size:,}"
    if meta.get("generator") == "slides":
        return None
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(n, int) for n in splits.values()):
        return "meta.json gives no item count per split"
    params = meta.get("params")
    names = TILE_ARRAYS + (("masks.npy",) if isinstance(params, dict) and params.get("masks") else ())
    for split, n in splits.items():
        for name in names:
            path = target / str(split) / name
            try:
                rows = np.load(path, mmap_mode="r").shape[:1]
            except (OSError, ValueError, EOFError) as error:
                return f"{split}/{name}: {one_line(error)[:200]}"
            if rows != (n,):
                return f"{split}/{name} has {rows[0] if rows else 0} items, meta.json says {n}"
    return None


def build_atomically(
    target: Path,
    prepare: Callable[[Path], None],  # lays out the temporary folder
    render_job: Callable[[Path, Any], int],  # (temporary folder, job) -> items rendered
    jobs: Sequence[Any],
    total: int,
    meta: dict,
    workers: int | None = None,
    needed_bytes: int = 0,
) -> None:
    """Build a generated dataset under a temporary name with worker processes, write meta.json
    last and rename: an interrupted generation leaves nothing that looks finished. A file lock
    makes concurrent processes (torchrun ranks) build it once: the others wait and reuse it.
    `needed_bytes`: what it will write, checked against the free space first."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target.with_name(target.name + ".lock"))):
            if (target / "meta.json").exists():  # another process built it while this one waited
                return
            _build(target, prepare, render_job, jobs, total, meta, workers, needed_bytes)
    except OSError as error:  # ENOSPC, EROFS, EACCES while laying out or writing
        raise HarnessError(f"{target}: cannot generate the data there ({error.strerror or error}); free space or "
                           "point --cache-dir elsewhere") from None


def _build(target, prepare, render_job, jobs, total, meta, workers, needed_bytes) -> None:
    free = shutil.disk_usage(target.parent).free
    if needed_bytes > free:
        raise HarnessError(f"{target}: generating it needs about {needed_bytes / 1e9:.2f} GB and "
                           f"{free / 1e9:.2f} GB are free there; free space or point --cache-dir elsewhere")
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        started, cpu_before = time.perf_counter(), _cpu_seconds()
        tmp.mkdir(parents=True)
        prepare(tmp)
        workers = workers or min(2, os.cpu_count() or 1)
        run = _Job(render_job, tmp)
        with progress_bar(f"generating {target.name}", total) as advance:
            if workers > 1:
                _render_in_workers(run, jobs, workers, advance, target)
            else:
                for job in jobs:
                    advance(run(job))
        # what generating it took (benchmarks/default_run.py reports it per dataset); not part of its identity
        meta = {**meta, "generation": {"wall_s": round(time.perf_counter() - started, 2),
                                       "cpu_s": round(_cpu_seconds() - cpu_before, 2), "workers": workers},
                # what was written, so that a file cut short since is noticed (discard_if_damaged)
                "files": {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*"))
                          if p.is_file()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _render_in_workers(run, jobs, workers: int, advance, target: Path) -> None:
    """The jobs over forked workers. Unlike multiprocessing.Pool, which waits for ever on a worker
    that died, the executor reports it (BrokenProcessPool), and that is one line."""
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
    try:
        for future in as_completed([pool.submit(run, job) for job in jobs]):
            advance(future.result())
    except BrokenProcessPool:
        free = shutil.disk_usage(target.parent).free
        raise HarnessError(f"{target}: a generation worker died (killed, out of memory, or a full disk: "
                           f"{free / 1e9:.2f} GB free there now); free space or memory and run again") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, the jobs not started are dropped


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended (the workers,
    once their pool is shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Job:
    def __init__(self, render_job, folder: Path):
        self.render_job = render_job
        self.folder = folder

    def __call__(self, job) -> int:
        return self.render_job(self.folder, job)
