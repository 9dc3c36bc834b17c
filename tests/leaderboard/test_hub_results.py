"""Results through the Hub: the real huggingface_hub client against a loopback stand-in.

The CLI runs in a subprocess so huggingface_hub reads HF_ENDPOINT (the stand-in) at import,
as it would for a user; the token is passed the usual way (HF_TOKEN) and must never be echoed.
"""

import json
import subprocess
import sys

import pytest

from tests.support.hub_standin import HubStandIn
from tests.support.result_files import write_result
from tests.support.hub_cli import TOKEN, harness, hub_env

@pytest.fixture
def hub():
    with HubStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    write_result(folder, "big", "t1", "tile_classification", 0.9, params=300_000_000)
    write_result(folder, "big", "t2", "retrieval", 0.7, main="map@5", params=300_000_000)
    write_result(folder, "small", "t1", "tile_classification", 0.8, params=5_000_000)
    write_result(folder, "small", "t2", "retrieval", status="skipped", reason="no data", main="map@5")
    return folder


def test_push_then_pull_round_trips_results_byte_for_byte(hub, results, tmp_path):
    env = hub_env(hub, tmp_path)
    pushed = harness(env, "push", "--repo", "lab/fm-results", "--results", str(results), "--private")
    assert pushed.returncode == 0, pushed.stderr
    assert "4 result files" in pushed.stdout
    repo = hub.repos[("dataset", "lab/fm-results")]
    assert repo.private and {"README.md", "leaderboard.parquet", "results/big/t1.json"} <= set(repo.files)

    pulled = harness(env, "pull", "--repo", "lab/fm-results", "--output", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    originals = sorted(p.relative_to(results) for p in results.glob("*/*.json"))
    copies = sorted(p.relative_to(tmp_path / "pulled") for p in (tmp_path / "pulled").glob("*/*.json"))
    assert copies == originals and len(copies) == 4
    for path in originals:
        assert (tmp_path / "pulled" / path).read_bytes() == (results / path).read_bytes()

    # the flat table the dataset card points `datasets` at
    import pandas as pd
    table_path = tmp_path / "table.parquet"
    table_path.write_bytes(repo.files["leaderboard.parquet"])
    table = pd.read_parquet(table_path)
    assert len(table) == 4 and table.loc[(table.model == "big") & (table.task == "t1"), "value"].item() == 0.9

    # writes carried the token; nothing echoed it, nothing uploaded it
    assert all(authorised for method, _, authorised in hub.log if method == "POST")
    for text in (pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr):
        assert TOKEN not in text
    assert not any(TOKEN.encode() in body for body in hub.bodies)


def test_a_pull_downloads_only_the_result_files_that_changed(hub, results, tmp_path):
    """The app re-reads the results dataset every 10 minutes and the backend before each publish:
    a result file whose blob is already in the local Hub cache costs no call, so a second pull after
    one result changed fetches that one file, and gets its new bytes."""
    env = hub_env(hub, tmp_path)
    assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
    first = harness(env, "pull", "--repo", "lab/fm-results", "--output", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    write_result(results, "big", "t1", "tile_classification", 0.95, params=300_000_000)  # one result changes
    assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
    before = len(hub.log)
    second = harness(env, "pull", "--repo", "lab/fm-results", "--output", str(tmp_path / "second"))
    assert second.returncode == 0, second.stderr
    fetched = {path.rsplit("/resolve/", 1)[1] for _, path, _ in hub.log[before:] if "/resolve/" in path}
    assert {name.split("/", 1)[1] for name in fetched} == {"results/big/t1.json"}, fetched
    for path in results.glob("*/*.json"):
        assert (tmp_path / "second" / path.relative_to(results)).read_bytes() == path.read_bytes()


PULL_AT_COMMITS = """
import json, sys
from pathlib import Path
from huggingface_hub import HfApi
from harness.leaderboard.hub_results import pull_at_commit
root, commits = Path(sys.argv[1]), []
for sha in json.loads(sys.argv[2]):
    commits.append(str(pull_at_commit("lab/fm-results", sha, root)))
print(json.dumps(commits))
"""


def test_the_board_keeps_one_copy_per_commit_and_only_the_two_newest(hub, results, tmp_path):
    """The app re-reads the dataset every 10 minutes for as long as it runs: a commit already pulled
    is not pulled again, and only the two newest commits' copies stay on disk (the app used to pull
    each time into a new temporary folder and never remove one)."""
    env = hub_env(hub, tmp_path)
    shas = []
    for value in (0.91, 0.92, 0.93):
        write_result(results, "big", "t1", "tile_classification", value, params=300_000_000)
        assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
        shas.append(hub.repos[("dataset", "lab/fm-results")].commits[-1])
    root = tmp_path / "board"
    before = len(hub.log)
    done = subprocess.run([sys.executable, "-c", PULL_AT_COMMITS, str(root), json.dumps(shas[:1] * 2)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len([1 for _, path, _ in hub.log[before:] if "/api/datasets/" in path]) == 1  # the second: no call
    done = subprocess.run([sys.executable, "-c", PULL_AT_COMMITS, str(root), json.dumps(shas[1:])], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    kept = sorted(p.name for p in (root / "lab--fm-results").iterdir())
    assert kept == sorted(shas[1:])  # the oldest copy is gone; no staging folder is left
    newest = json.loads((root / "lab--fm-results" / shas[2] / "big" / "t1.json").read_text())
    assert newest["main_score"]["value"] == 0.93


APP_ON_THE_HUB = """
import json, sys
from streamlit.testing.v1 import AppTest
shown = []
for _ in range(2):  # two page loads: the second is served from the copy the first pulled
    app = AppTest.from_file(sys.argv[1], default_timeout=60)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    shown.append({"caption": app.caption[0].value, "models": list(app.dataframe[0].value["model"])})
print(json.dumps(shown))
"""


def test_the_app_reads_a_results_dataset_on_the_hub(hub, results, tmp_path):
    """`harness leaderboard --hub ORG/REPO` as a page load: the app names the commit it shows and
    ranks the pulled models; its copy lives in one folder per commit in the user's harness cache."""
    from pathlib import Path

    env = hub_env(hub, tmp_path)
    assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
    sha = hub.repos[("dataset", "lab/fm-results")].commits[-1]
    env.update(HARNESS_HUB_REPO="lab/fm-results", HARNESS_CACHE=str(tmp_path / "cache"))
    app = str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py")
    done = subprocess.run([sys.executable, "-c", APP_ON_THE_HUB, app], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"at commit [`{sha[:12]}`]" in first["caption"] and first["models"] == ["big", "small"]
    assert second == first
    assert [p.name for p in (tmp_path / "cache" / "board" / "lab--fm-results").iterdir()] == [sha]


def test_a_pull_reads_equal_shares_per_model_up_to_its_bounds():
    from types import SimpleNamespace

    from harness.leaderboard.hub_results import within_bounds

    def files(folder, n, size=100):
        return [SimpleNamespace(rfilename=f"results/{folder}/t{i:04d}.json", size=size) for i in range(n)]

    listed = files("a", 3) + files("b", 3) + files("flood", 1000)  # one writer's thousand files
    kept, said = within_bounds(listed, max_files=10)
    names = [s.rfilename.split("/")[1] for s in kept]
    assert len(kept) == 10 and names.count("a") == 3 and names.count("b") == 3 and names.count("flood") == 4
    assert said == ["996 result files left out: the dataset lists 1,006 (0.0 GB), more than a board reads (10 files, "
                    "4.3 GB); each model folder was read in turn up to that"]
    kept, said = within_bounds(files("a", 2) + files("huge", 2, size=10**6), max_bytes=10**6 + 300)
    assert [s.rfilename for s in kept] == ["results/a/t0000.json", "results/huge/t0000.json", "results/a/t0001.json"]
    kept, said = within_bounds(listed)  # the default bounds: all of it
    assert len(kept) == len(listed) and said == []


APP_WITHIN_BOUNDS = """
import json, sys
import harness.leaderboard.hub_results as hub_results
hub_results.MAX_PULLED_FILES = 3
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=60)
app.run()
assert not app.exception, [e.message for e in app.exception]
table = app.dataframe[0].value
print(json.dumps({"warnings": [w.value for w in app.warning], "models": list(table["model"]),
                  "columns": list(table.columns)}))
"""


def test_the_app_pulls_its_declared_tasks_within_bounds_and_says_what_it_left_out(hub, results, tmp_path):
    from pathlib import Path

    from harness.leaderboard.formatting import plain

    write_result(results, "flood", "t1", "tile_classification", 0.5)
    write_result(results, "flood", "t2", "retrieval", 0.5, main="map@5")
    write_result(results, "big", "t9", "tile_classification", 0.5)  # not a task of this board: not pulled
    env = hub_env(hub, tmp_path)
    assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
    env.update(HARNESS_HUB_REPO="lab/fm-results", HARNESS_CACHE=str(tmp_path / "cache"), HARNESS_BOARD_TASKS="t1,t2")
    app = str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py")
    done = subprocess.run([sys.executable, "-c", APP_WITHIN_BOUNDS, app], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    # round one: each folder's t1; then big/t2 would be the fourth file: the three t2 files are left out
    assert any(w.startswith(plain("3 result files left out: the dataset lists 6")) for w in shown["warnings"]), shown
    assert "t9" not in shown["columns"] and set(shown["models"]) == {"big", "flood", "small"}


def test_a_local_file_that_is_not_a_valid_result_is_named_and_not_pushed(hub, results, tmp_path):
    (results / "broken").mkdir()
    (results / "broken" / "t1.json").write_text('{"task": "t1", "model": null}')
    done = harness(hub_env(hub, tmp_path), "push", "--repo", "lab/r", "--results", str(results))
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.strip().splitlines()  # it was left out silently
    assert "broken/t1.json: skipped, not a valid result file" in line and line.endswith("not pushed")
    assert "results/broken/t1.json" not in hub.repos[("dataset", "lab/r")].files


def test_a_removed_result_disappears_on_the_next_push(hub, results, tmp_path):
    env = hub_env(hub, tmp_path)
    assert harness(env, "push", "--repo", "lab/r", "--results", str(results)).returncode == 0
    (results / "small" / "t2.json").unlink()
    assert harness(env, "push", "--repo", "lab/r", "--results", str(results)).returncode == 0
    files = hub.repos[("dataset", "lab/r")].files
    assert "results/small/t1.json" in files and "results/small/t2.json" not in files


def test_push_without_a_token_is_one_actionable_line(hub, results, tmp_path):
    done = harness(hub_env(hub, tmp_path, token=None), "push", "--repo", "lab/r", "--results", str(results))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "hf auth login" in lines[0]


def test_pull_of_a_missing_repo_is_one_line(hub, tmp_path):
    done = harness(hub_env(hub, tmp_path), "pull", "--repo", "lab/absent", "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and "lab/absent: repository not found" in done.stderr


def test_the_space_installs_the_harness_from_a_pinned_commit(tmp_path):
    from harness.errors import HarnessError
    from harness.leaderboard.space import default_source

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one")
    with pytest.raises(HarnessError, match="pass --source"):  # no origin: nowhere the Space could install from
        default_source(tmp_path)
    git("remote", "add", "origin", "git@github.com:lab/pathology-harness.git")
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert default_source(tmp_path) == f"pathology-harness @ git+https://github.com/lab/pathology-harness.git@{commit}"
    (tmp_path / "tracked.txt").write_text("a")
    git("add", "tracked.txt")
    with pytest.raises(HarnessError, match="uncommitted changes"):  # they would not be in the Space
        default_source(tmp_path)


def test_a_hostile_results_dataset_never_chooses_a_path_and_never_jams_a_publish(hub, results, tmp_path):
    """A folder name too long for a file system (or one with a path in it) in the results dataset is
    left out of pulls, and the queue's publish (pull, overlay, commit) still works: it made every
    later publish fail as 'cannot reach the Hub'. A file larger than the board reads is left out
    by the size the Hub lists, never downloaded."""
    from harness.leaderboard.aggregate import MAX_RESULT_BYTES

    env = hub_env(hub, tmp_path)
    assert harness(env, "push", "--repo", "lab/fm-results", "--results", str(results)).returncode == 0
    repo = hub.repos[("dataset", "lab/fm-results")]
    long_name = "x" * 300
    for name in (f"results/{long_name}/t1.json", "results/..evil/t1.json", "results/big/sub/t1.json"):
        repo.files[name] = b"{}"
    repo.files["results/small/huge.json"] = b" " * (MAX_RESULT_BYTES + 1)
    repo.commits.append("f" * 40)
    repo.snapshots["f" * 40] = dict(repo.files)

    pulled = harness(env, "pull", "--repo", "lab/fm-results", "--output", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    assert "4 result files" in pulled.stdout and pulled.stderr.count("left out") == 4
    assert f"{MAX_RESULT_BYTES + 1:,} bytes, more than a result file may have" in pulled.stderr
    assert sorted(p.parent.name for p in (tmp_path / "pulled").glob("*/*.json")) == ["big", "big", "small", "small"]
    assert not [path for _, path, _ in hub.log if path.endswith(("huge.json", "sub/t1.json"))]  # never fetched

    newcomer = tmp_path / "newcomer"
    write_result(newcomer, "lab--new", "t1", "tile_classification", 0.5)
    publish = ("import sys; from pathlib import Path; from harness.leaderboard.hub_results import push_model_results; "
               "print(push_model_results(Path(sys.argv[1]), {'lab--new'}, 'lab/fm-results', log=print))")
    done = subprocess.run([sys.executable, "-c", publish, str(newcomer)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # the backend's log names what its pull left out (and so what the rebuilt table lacks)
    assert done.stdout.count("left out") == 4 and "not in the rebuilt table" in done.stdout, done.stdout
    assert "results/lab--new/t1.json" in repo.files and f"results/{long_name}/t1.json" in repo.files  # untouched


def test_two_folders_claiming_one_model_name_are_refused_at_push(hub, results, tmp_path):
    write_result(results, "big-copy", "t1", "tile_classification", 0.99, model={"name": "big"})
    pushed = harness(hub_env(hub, tmp_path), "push", "--repo", "lab/fm-results", "--results", str(results))
    lines = pushed.stderr.strip().splitlines()
    assert pushed.returncode == 2 and len(lines) == 1, pushed.stderr
    assert "the model name 'big' is claimed by the result folders big, big-copy" in lines[0]
    assert ("dataset", "lab/fm-results") not in hub.repos


def test_only_distillation_reports_the_board_can_show_are_published(results, tmp_path):
    """Beside a valid report, a broken one (a NaN retention) stays local: it was published
    whenever any other report in the folder was valid."""
    import json

    from harness.leaderboard.hub_results import _stage

    report = {"student": "small", "method": "feature_kd", "teachers": {"big": {
        "tasks": {"t1": {"student": 0.8, "teacher": 0.9, "retention": 88.9}}, "median_retention": 88.9}}}
    (results / "small" / "distillation.json").write_text(json.dumps(report))
    report["teachers"]["big"]["tasks"]["t1"]["retention"] = float("nan")
    (results / "big" / "distillation.json").write_text(json.dumps({**report, "student": "big"}))
    staging = tmp_path / "staging"
    assert _stage(results, staging, "lab/r") == 4  # the result files; reports are not counted
    assert (staging / "results" / "small" / "distillation.json").exists()
    assert not (staging / "results" / "big" / "distillation.json").exists()
