"""The leaderboard as a Hugging Face Space: a Docker Space running this harness's Streamlit app on
a results dataset.

The Hub builds Streamlit apps from the Docker template (front matter `sdk: docker`,
`app_port: 8501`, and a Dockerfile). The image installs only what the app imports
(APP_REQUIREMENTS, pinned to the versions this machine runs) and then the harness itself with
`--no-deps`, from a source the Space can reach: a git URL at a commit until a release exists.
So the Space never installs torch, timm, openslide or scikit-survival.

A private results or requests dataset needs a Space secret HF_TOKEN (Settings -> Variables and
secrets) holding a read token; huggingface_hub reads it from the environment. With `submissions`
(the Queue tab's submission form, harness/submission_service.py), HF_TOKEN must also be able to
write the requests dataset: the Space files the requests, and submitters need no write access.
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError
from harness.hub_access import hub_api, hub_call

# What `leaderboard/app.py` imports, directly or through harness.results / harness.submissions /
# harness.leaderboard.*: nothing else is installed in the Space.
APP_REQUIREMENTS = ("streamlit", "altair", "pandas", "pyarrow", "numpy", "scipy", "pydantic", "pyyaml",
                    "huggingface_hub", "filelock")
APP_PORT = 8501

APP_PY = '''"""Pathology FM leaderboard Space: the harness's leaderboard app on {results}."""

import os
import runpy

os.environ.setdefault("HARNESS_HUB_REPO", "{results}")
{requests}{board_tasks}{submissions}runpy.run_module("harness.leaderboard.app", run_name="__main__")
'''

DOCKERFILE = '''# The leaderboard app of pathology-harness {version} (no torch: only what the app imports).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /home/user/app
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
RUN pip install --no-cache-dir --user --no-deps "{source}"
COPY --chown=user app.py .
EXPOSE {port}
CMD ["streamlit", "run", "app.py", "--server.port={port}", "--server.address=0.0.0.0", "--server.headless=true", \\
     "--browser.gatherUsageStats=false"]
'''


def pinned_requirements() -> str:
    """APP_REQUIREMENTS at the versions installed here (what this harness was tested with)."""
    lines = []
    for name in APP_REQUIREMENTS:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            from harness.install_hints import install_extra

            raise HarnessError(f"{name} is not installed: install the app extra ({install_extra('app')}) before "
                               "building the Space") from None
    return "\n".join(lines) + "\n"


def default_source(here: Path | None = None) -> str:
    """`pathology-harness @ git+<origin>@<HEAD commit>` of the checkout this harness runs from."""
    from harness.provenance import checkout_state

    here = here or Path(__file__).resolve().parent
    state = checkout_state(here)
    if state is None or state[2] is None:
        raise HarnessError("cannot tell where the Space should install the harness from (this is not a git "
                           "checkout with an 'origin' remote): pass --source, e.g. "
                           "'pathology-harness @ git+https://github.com/ORG/REPO@COMMIT'")
    commit, dirty, url = state
    if dirty:
        raise HarnessError(f"{here}: uncommitted changes would not be in the Space; commit and push them, "
                           "or pass --source")
    if url.startswith("git@"):  # git@host:org/repo.git -> https://host/org/repo.git
        url = "https://" + url.removeprefix("git@").replace(":", "/", 1)
    return f"pathology-harness @ git+{url}@{commit}"


def space_files(results_repo: str, source: str, requests_repo: str | None = None,
                title: str = "Pathology FM leaderboard", board_tasks: list[str] | None = None,
                submissions: str | None = None) -> dict[str, str]:
    """README (Space front matter), Dockerfile, requirements.txt and app.py of the leaderboard Space.
    `board_tasks`: the tasks the board ranks on (the app's HARNESS_BOARD_TASKS); `submissions`: the
    submission form's limits (HARNESS_SUBMISSIONS, e.g. 'on'; needs `requests_repo`)."""
    if submissions is not None:
        from harness.submission_service import limits_from_env, limits_text

        limits = limits_from_env(submissions, "--submissions")
        if limits is None or not requests_repo:
            raise HarnessError("--submissions turns on the Space's submission form for its requests dataset: give "
                               "--requests-repo, and on or limits (per_namespace=5,period_days=7,waiting=100)")
        submissions = limits_text(limits)
        from harness.submissions import MAX_TASKS_CHARS

        if len(",".join(board_tasks or ["all"])) > MAX_TASKS_CHARS:
            raise HarnessError(f"--submissions: the form files the board's {len(board_tasks)} tasks in each request, "
                               f"more than a request's {MAX_TASKS_CHARS:,} characters: declare fewer tasks")
    readme = (
        "---\n"
        f"title: {title}\n"
        "sdk: docker\n"
        f"app_port: {APP_PORT}\n"
        "pinned: false\n"
        "---\n\n"
        f"# {title}\n\n"
        f"The leaderboard of pathology-harness {__version__} results stored in the dataset "
        f"[{results_repo}](https://huggingface.co/datasets/{results_repo}); the app reads it on start and every "
        "10 minutes.\n\n"
        f"- Add results: `harness push --repo {results_repo}` (or a queue backend, `harness queue run`).\n"
        + (f"- Submit a model: the Queue tab's form (the Space files the request in `{requests_repo}` with its "
           "token: the Space secret `HF_TOKEN` must be able to write that dataset, and submitters need no access "
           "to it).\n" if submissions else
           f"- Submit a model: `harness submit hf-hub:ORG/MODEL --requests-repo {requests_repo}`.\n"
           if requests_repo else "")
        + (f"- Ranked on {len(board_tasks)} declared tasks: a model is ranked once it has a valid score on every "
           "one; run the queue backend with the same tasks (`harness queue run --tasks ...`).\n"
           if board_tasks else "")
        + "- Private datasets: add a Space secret `HF_TOKEN` with a read token (Settings -> Variables and "
          "secrets).\n\n"
        f"The image installs only the app's requirements (`requirements.txt`) and the harness from `{source}` "
        "without its dependencies: no torch.\n"
    )
    requests = f'os.environ.setdefault("HARNESS_REQUESTS_REPO", "{requests_repo}")\n' if requests_repo else ""
    board = (f'os.environ.setdefault("HARNESS_BOARD_TASKS", {json.dumps(",".join(board_tasks))})\n'
             if board_tasks else "")
    form = f'os.environ.setdefault("HARNESS_SUBMISSIONS", "{submissions}")\n' if submissions else ""
    return {
        "README.md": readme,
        "Dockerfile": DOCKERFILE.format(version=__version__, source=source, port=APP_PORT),
        "requirements.txt": pinned_requirements(),
        "app.py": APP_PY.format(results=results_repo, requests=requests, board_tasks=board, submissions=form),
    }


def write_space(folder: Path, results_repo: str, source: str, requests_repo: str | None = None,
                board_tasks: list[str] | None = None, submissions: str | None = None) -> Path:
    files = space_files(results_repo, source, requests_repo, board_tasks=board_tasks, submissions=submissions)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def push_space(space_id: str, results_repo: str, source: str, requests_repo: str | None = None,
               private: bool = False, board_tasks: list[str] | None = None, submissions: str | None = None) -> str:
    api = hub_api()
    with tempfile.TemporaryDirectory() as staging:
        write_space(Path(staging), results_repo, source, requests_repo, board_tasks, submissions)
        hub_call("creating the Space", space_id, lambda: api.create_repo(
            space_id, repo_type="space", space_sdk="docker", private=private, exist_ok=True))
        commit = hub_call("uploading the Space", space_id, lambda: api.upload_folder(
            repo_id=space_id, repo_type="space", folder_path=staging,
            commit_message=f"leaderboard app (pathology-harness {__version__}) on {results_repo}"))
    return str(commit)
