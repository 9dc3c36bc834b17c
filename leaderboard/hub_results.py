"""Results on the Hugging Face Hub: push a results folder to a dataset repo, pull it back, and
publish the leaderboard app as a Streamlit Space that reads that dataset.

Dataset repo layout:
  results/<model-slug>/<task>.json   the result files, byte for byte
  leaderboard.parquet                one row per (model, task): the flat table for pandas/datasets
  README.md                          a dataset card pointing `datasets` at the parquet

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`); it is never
printed, logged or written. The endpoint is HF_ENDPOINT's (the tests' loopback stand-in).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError
from leaderboard.aggregate import build_leaderboard, load_results

RESULTS_PREFIX = "results"
TABLE_FILE = "leaderboard.parquet"


def _api():
    from huggingface_hub import HfApi

    return HfApi()


def _hub_call(what: str, repo_id: str, call):
    """Run a Hub call; turn its HTTP errors into one line (status and the Hub's message)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        return call()
    except RepositoryNotFoundError:
        raise HarnessError(f"{repo_id}: repository not found on the Hub (or not visible with your token): "
                           "check the name, or log in with `hf auth login` / HF_TOKEN") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        if status in (401, 403):
            raise HarnessError(f"{repo_id}: {what} refused (HTTP {status}): set HF_TOKEN or run `hf auth login` "
                               "with a token that can write to this repository") from None
        raise HarnessError(f"{repo_id}: {what} failed (HTTP {status}): {str(error).splitlines()[0]}") from None
    except OSError as error:  # connection refused, DNS, offline mode
        raise HarnessError(f"{repo_id}: {what} failed: cannot reach the Hub ({error.__class__.__name__}); "
                           "check the connection or HF_ENDPOINT") from None


def flat_table(results_dir: Path):
    """One row per (model, task) with the main score, its CI, status and the model's size."""
    import pandas as pd

    results, warnings = load_results(results_dir)
    board = build_leaderboard(results, warnings)
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
    return pd.DataFrame(rows), board.warnings


def push_results(results_dir: Path, repo_id: str, private: bool = False) -> tuple[str, int]:
    """Upload every valid result file, the flat parquet and a card in one commit; (url, n files)."""
    results_dir = Path(results_dir)
    table, warnings = flat_table(results_dir)
    if table.empty:
        raise HarnessError(f"{results_dir}: no result files to push; run `harness run ...` first")
    api = _api()
    with tempfile.TemporaryDirectory() as staging:
        staging = Path(staging)
        valid = {(row.model_slug, row.task) for row in table.itertuples()}
        for path in sorted(results_dir.glob("*/*.json")):
            if (path.parent.name, path.stem) in valid:
                target = staging / RESULTS_PREFIX / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        table.to_parquet(staging / TABLE_FILE, index=False)
        (staging / "README.md").write_text(_dataset_card(repo_id, table))
        _hub_call("creating the dataset repo", repo_id,
                  lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        commit = _hub_call("uploading results", repo_id, lambda: api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=staging,
            commit_message=f"harness {__version__}: {len(valid)} results",
            delete_patterns=[f"{RESULTS_PREFIX}/**"],  # results removed locally disappear on the Hub too
        ))
    return str(commit), len(valid)


def pull_results(repo_id: str, output: Path, revision: str | None = None) -> int:
    """Download the repo's result files into `output`/<slug>/<task>.json; the number of files."""
    from huggingface_hub import snapshot_download

    folder = _hub_call("downloading results", repo_id, lambda: snapshot_download(
        repo_id, repo_type="dataset", revision=revision, allow_patterns=[f"{RESULTS_PREFIX}/*/*.json"]))
    source = Path(folder) / RESULTS_PREFIX
    files = sorted(source.glob("*/*.json")) if source.is_dir() else []
    for path in files:
        target = Path(output) / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return len(files)


SPACE_APP = '''"""Pathology FM leaderboard Space: the harness's leaderboard app on the results dataset {repo}."""

import os
import runpy

os.environ.setdefault("HARNESS_HUB_REPO", "{repo}")
runpy.run_module("leaderboard.app", run_name="__main__")
'''


def space_files(results_repo: str, title: str = "Pathology FM leaderboard") -> dict[str, str]:
    """README (Space front matter), app.py and requirements.txt of the leaderboard Space."""
    import streamlit

    readme = (
        "---\n"
        f"title: {title}\n"
        "sdk: streamlit\n"
        f"sdk_version: {streamlit.__version__}\n"
        "app_file: app.py\n"
        "pinned: false\n"
        "---\n\n"
        f"# {title}\n\nThe leaderboard of pathology-harness {__version__} results stored in the dataset "
        f"[{results_repo}](https://huggingface.co/datasets/{results_repo}). Push new results with "
        f"`harness push --repo {results_repo}`; this app reads them on start (and every 10 minutes).\n"
    )
    requirements = f"pathology-harness[app]=={__version__}\n"
    return {"README.md": readme, "app.py": SPACE_APP.format(repo=results_repo), "requirements.txt": requirements}


def push_space(space_id: str, results_repo: str, private: bool = False) -> str:
    api = _api()
    with tempfile.TemporaryDirectory() as staging:
        for name, text in space_files(results_repo).items():
            (Path(staging) / name).write_text(text)
        _hub_call("creating the Space", space_id, lambda: api.create_repo(
            space_id, repo_type="space", space_sdk="streamlit", private=private, exist_ok=True))
        commit = _hub_call("uploading the Space", space_id, lambda: api.upload_folder(
            repo_id=space_id, repo_type="space", folder_path=staging,
            commit_message=f"leaderboard app (pathology-harness {__version__}) on {results_repo}"))
    return str(commit)


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
