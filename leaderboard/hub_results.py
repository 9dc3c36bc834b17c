"""Results on the Hugging Face Hub: push a results folder to a dataset repo, pull it back, or
add one model's results to it (the queue backend). The Space that shows it: leaderboard/space.py.

Dataset repo layout:
  results/<model-slug>/<task>.json   the result files, byte for byte
  results/<student>/distillation.json  teacher-vs-student reports (harness distill --score)
  leaderboard.parquet                one row per (model, task): the flat table for pandas/datasets
  README.md                          a dataset card pointing `datasets` at the parquet

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`); it is never
printed, logged or written. The endpoint is HF_ENDPOINT's (the tests' loopback stand-in).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from harness import __version__
from harness.errors import HarnessError
from harness.hub_access import hub_api, hub_call, hub_error
from harness.hub_file_cache import files_at_commit
from harness.results import DISTILLATION_REPORT
from harness.leaderboard.aggregate import FOLDER, MAX_RESULT_BYTES, load_results
from harness.leaderboard.student_tables import REPORT_ERRORS, read_distillation_report

RESULTS_PREFIX = "results"
TABLE_FILE = "leaderboard.parquet"
LEFT_OUT = "left-out.txt"  # in a pulled copy: what the pull left out, one line each, for the board to say
# What one pull reads at most: a board of 1,000 models on 100 tasks is 100,000 files of tens of kB. A
# dataset that lists more (anyone who can push to it can add files) is read in equal shares per model
# folder up to these, the rest left out and said, instead of filling the board's disk or its time.
MAX_PULLED_FILES = 200_000
MAX_PULLED_BYTES = 4 * 1024**3



def flat_table(results_dir: Path):
    """One row per (model, task) with the main score, its CI, status and the model's size."""
    import pandas as pd

    results, warnings = load_results(results_dir)
    rows = []
    for slug, result in results:
        main = result.metrics.get(result.main_score.name)
        rows.append({
            "model_slug": slug, "model": result.model.name, "weights": result.model.weights,
            "n_parameters": result.model.n_parameters, "embed_dim": result.model.embed_dim,
            "task": result.task, "task_version": result.task_version, "family": result.family,
            "status": result.status, "main_score": result.main_score.name, "value": result.main_score.value,
            "ci95_low": main.ci95[0] if main and main.ci95 else None,
            "ci95_high": main.ci95[1] if main and main.ci95 else None,
            "reason": result.reason, "items_per_s": result.timings.items_per_s, "date": result.date,
        })
    return pd.DataFrame(rows), warnings


def _stage(results_dir: Path, staging: Path, repo_id: str, slugs: set[str] | None = None,
           log: Callable[[str], None] | None = None) -> int:
    """Copy the valid result files (and distillation reports) of `results_dir` into `staging` under
    results/, with the flat table and the dataset card built from all of them; the number of
    result files. `slugs`: copy only these models' files (the table still covers everything).
    `log` is told each file left out as not a valid result file."""
    table, warnings = flat_table(results_dir)
    for warning in warnings if log else []:
        log(f"warning: {warning}; not pushed")
    if table.empty:
        raise HarnessError(f"{results_dir}: no result files to push; run `harness run ...` first")
    for name, folders in table.groupby("model")["model_slug"].unique().items():
        if len(folders) > 1 and (slugs is None or slugs & set(folders)):
            raise HarnessError(f"{results_dir}: the model name '{name[:100]}' is claimed by the result folders "
                               f"{', '.join(sorted(folders))}: one name, one model; rename or remove one before pushing")
    valid = {(row.model_slug, f"{row.task}.json") for row in table.itertuples()}
    valid |= {(path.parent.name, DISTILLATION_REPORT) for path in results_dir.glob(f"*/{DISTILLATION_REPORT}")
              if _is_report(path)}
    copied = 0
    for path in sorted(results_dir.glob("*/*.json")):
        if (path.parent.name, path.name) in valid and (slugs is None or path.parent.name in slugs):
            target = staging / RESULTS_PREFIX / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += path.name != DISTILLATION_REPORT
    table.to_parquet(staging / TABLE_FILE, index=False)
    (staging / "README.md").write_text(_dataset_card(repo_id, table))
    return copied


def _is_report(path: Path) -> bool:
    """Whether the board can show this distillation report (a broken one is never published)."""
    try:
        read_distillation_report(path)
    except REPORT_ERRORS:
        return False
    return True


def push_results(results_dir: Path, repo_id: str, private: bool = False,
                 log: Callable[[str], None] | None = None) -> tuple[str, int]:
    """Upload every valid result file, the flat parquet and a card in one commit; (url, n files).
    The dataset then mirrors the folder: results deleted locally are deleted on the Hub. `log` is
    told each file left out as not a valid result file."""
    api = hub_api()
    with tempfile.TemporaryDirectory() as staging:
        n = _stage(Path(results_dir), Path(staging), repo_id, log=log)
        hub_call("creating the dataset repo", repo_id,
                 lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        commit = hub_call("uploading results", repo_id, lambda: api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=staging,
            commit_message=f"harness {__version__}: {n} results",
            delete_patterns=[f"{RESULTS_PREFIX}/**"],  # results removed locally disappear on the Hub too
        ))
    return str(commit), n


def push_model_results(results_dir: Path, slugs: set[str], repo_id: str, attempts: int = 5,
                       log: Callable[[str], None] | None = None) -> int:
    """Add these models' result files to the dataset without touching anyone else's (the queue
    backend): the dataset's results are pulled, these overlaid, the table rebuilt from all, and
    one commit made on top of the head that was read (re-done if another commit slipped in).
    What the pull leaves out stays on the Hub untouched, out of the table; `log` is told each."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api = hub_api()
    hub_call("creating the dataset repo", repo_id, lambda: api.create_repo(repo_id, repo_type="dataset", exist_ok=True))
    for _ in range(attempts):
        head = hub_call("reading results", repo_id, lambda: api.repo_info(repo_id, repo_type="dataset")).sha
        with tempfile.TemporaryDirectory() as merged, tempfile.TemporaryDirectory() as staging:
            merged, staging = Path(merged), Path(staging)
            if head and set(head) != {"0"}:
                _, skipped = pull_results(repo_id, merged, revision=head)
                for line in skipped if log else []:
                    log(f"warning: {repo_id}: {line}; not in the rebuilt table (the file stays on the Hub)")
            for slug in slugs:
                for path in (Path(results_dir) / slug).glob("*.json"):
                    (merged / slug).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, merged / slug / path.name)
            n = _stage(merged, staging, repo_id, slugs, log=log)
            operations = [CommitOperationAdd(path_in_repo=str(p.relative_to(staging)), path_or_fileobj=str(p))
                          for p in sorted(staging.rglob("*")) if p.is_file()]
            try:
                api.create_commit(repo_id, operations, commit_message=f"results of {', '.join(sorted(slugs))}",
                                  repo_type="dataset", parent_commit=head if head and set(head) != {"0"} else None)
                return n
            except HfHubHTTPError as error:
                if error.response is None or error.response.status_code != 412:
                    raise hub_error("uploading results", repo_id, error) from None
    raise HarnessError(f"{repo_id}: could not add the results: the dataset kept changing ({attempts} tries)")


def pull_results(repo_id: str, output: Path, revision: str | None = None,
                 tasks: set[str] | None = None) -> tuple[int, list[str]]:
    """Download the repo's result files into `output`/<slug>/<task>.json: (number of files, the
    paths left out: no plain model folder and file name (a path in a name, or a name too long for
    a file system), or larger than the board reads, by the size the Hub gives, so never downloaded;
    and past MAX_PULLED_FILES / MAX_PULLED_BYTES, see `within_bounds`). `tasks`: only these tasks'
    files (and distillation reports). Nothing in the dataset chooses a path outside `output`."""
    info = hub_call("reading results", repo_id, lambda: hub_api().repo_info(  # one commit for listing and download
        repo_id, repo_type="dataset", revision=revision, files_metadata=True))
    wanted, skipped = [], []
    for sibling in info.siblings or []:
        name, parts = sibling.rfilename, sibling.rfilename.split("/")
        if parts[0] != RESULTS_PREFIX or not name.endswith(".json"):
            continue
        if not (len(parts) == 3 and FOLDER.fullmatch(parts[1]) and ".." not in parts[1] and FOLDER.fullmatch(parts[2])):
            # a path in a name, or a name too long for a file system: never written here
            skipped.append(f"{name[:160]}: left out (not results/<model folder>/<task>.json)")
        elif (sibling.size or 0) > MAX_RESULT_BYTES:
            skipped.append(f"{name[:160]}: left out ({sibling.size:,} bytes, more than a result file may have)")
        elif tasks is None or parts[2] == DISTILLATION_REPORT or parts[2].removesuffix(".json") in tasks:
            wanted.append(sibling)
    wanted, over = within_bounds(wanted)
    skipped += over
    if not wanted:
        return 0, skipped
    # only the files whose blob is not in the local Hub cache yet are downloaded (harness/hub_file_cache.py)
    local = files_at_commit(repo_id, "dataset", info.sha, wanted, "downloading results")
    for sibling in wanted:
        target = Path(output) / Path(sibling.rfilename).relative_to(RESULTS_PREFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local[sibling.rfilename], target)
    return len(wanted), skipped


def within_bounds(siblings: list, max_files: int | None = None, max_bytes: int | None = None
                  ) -> tuple[list, list[str]]:
    """(the files read, one line saying what was left out): model folders take turns, one file
    each per round in name order, until the next file would pass either bound (default
    MAX_PULLED_FILES, MAX_PULLED_BYTES); so many folders or large files added by one writer cut
    every model's share equally instead of pushing others out."""
    max_files = MAX_PULLED_FILES if max_files is None else max_files
    max_bytes = MAX_PULLED_BYTES if max_bytes is None else max_bytes
    rounds: dict[str, int] = {}  # model folder -> its files so far: a file's round is its place in its folder
    order = []
    for sibling in sorted(siblings, key=lambda s: s.rfilename):
        folder = sibling.rfilename.split("/")[1]
        order.append((rounds.get(folder, 0), sibling.rfilename, sibling))
        rounds[folder] = rounds.get(folder, 0) + 1
    kept, size = [], 0
    for _, _, sibling in sorted(order, key=lambda item: item[:2]):
        if len(kept) == max_files or size + (sibling.size or 0) > max_bytes:
            break
        kept.append(sibling)
        size += sibling.size or 0
    if len(kept) == len(siblings):
        return kept, []
    left = len(siblings) - len(kept)
    return kept, [f"{left:,} result files left out: the dataset lists {len(siblings):,} ("
                  f"{sum(s.size or 0 for s in siblings) / 1e9:.1f} GB), more than a board reads ({max_files:,} files, "
                  f"{max_bytes / 1e9:.1f} GB); each model folder was read in turn up to that"]


def pull_at_commit(repo_id: str, commit: str, root: Path, keep: int = 2, tasks: set[str] | None = None) -> Path:
    """The dataset's result files at `commit` in `root`/<repo>/<commit>, pulled once per commit
    (a board that re-reads every 10 minutes pulls nothing while nothing changed). Only the `keep`
    newest commits' copies stay: the board does not fill its disk over months of re-reads, and a
    page still reading the previous copy is not cut off mid-run. What the pull left out is listed
    in the copy's LEFT_OUT file. `tasks`: only these tasks' files (a board's declared tasks)."""
    import hashlib

    from harness.hub_access import is_commit
    from harness.submissions import is_hub_id

    if not is_hub_id(repo_id):
        raise HarnessError(f"'{repo_id[:100]}' is not a Hub dataset id (ORG/NAME)")
    if not is_commit(commit):
        raise HarnessError(f"{repo_id}: '{commit[:60]}' is not a commit id")
    folder = Path(root) / repo_id.replace("/", "--")
    if tasks is not None:  # another board's declared tasks: another copy
        folder = folder / hashlib.sha256(",".join(sorted(tasks)).encode()).hexdigest()[:12]
    target = folder / commit
    if not target.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{commit}-", dir=folder))
        try:
            _, skipped = pull_results(repo_id, staging, revision=commit, tasks=tasks)
            (staging / LEFT_OUT).write_text("".join(f"{line}\n" for line in skipped), encoding="utf-8")
            os.replace(staging, target)  # whole or not at all: a reader never sees a half-pulled copy
        except OSError:
            if not target.is_dir():  # another process pulled the same commit first: theirs is kept
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    os.utime(target)  # newest first, by when each copy was last asked for
    copies = sorted((p for p in folder.iterdir() if p.is_dir() and is_commit(p.name)),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in copies[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _dataset_card(repo_id: str, table) -> str:
    models = table["model"].nunique()
    tasks = table["task"].nunique()
    return (
        "---\n"
        "configs:\n"
        "- config_name: default\n"
        f"  data_files: {TABLE_FILE}\n"
        "tags: [pathology, benchmark, leaderboard]\n"
        "---\n\n"
        f"# {repo_id}\n\nResults of pathology-harness {__version__}: {models} models x {tasks} tasks. "
        f"`{TABLE_FILE}` has one row per (model, task); `{RESULTS_PREFIX}/<model>/<task>.json` are the full "
        "result files (metrics with CIs, details, timings). Browse them with "
        f"`harness leaderboard --hub {repo_id}`.\n"
    )
