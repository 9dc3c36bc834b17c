"""The board's own submission service (harness/submission_service.py): the Space files requests with
its token, so submitters never write the requests dataset. Its limits are checked on plain
requests; the service, the CLI's race with a backend and the Space's form run against the Hub
stand-in with the real huggingface_hub client (in subprocesses, as a user's process would)."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from harness.errors import HarnessError
from harness.submission_service import SubmissionLimits, admission, limits_from_env, limits_text
from harness.submissions import Request, request_id
from tests.support.hub_cli import TOKEN, harness, hub_env
from tests.support.hub_standin import HubStandIn, Repo

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
CARD = b"name: lab/fm\narchitecture: vit_tiny_patch16_224\npooling: cls\nembed_dim: 192\n"


def filed(hub_id: str, days_ago: float, status: str = "FINISHED", submitted: str | None = None) -> Request:
    sha = hashlib.sha1(f"{hub_id}{days_ago}".encode()).hexdigest()
    when = submitted or (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Request(id=request_id(hub_id, sha), status=status, model_name=hub_id, hub_id=hub_id, commit_sha=sha,
                   revision="main", tasks="all", submitted=when, updated=when)


# --- limits, on plain requests -----------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("off", None), ("on", SubmissionLimits()),
    ("per_namespace=2, period_days=0.5", SubmissionLimits(per_namespace=2, period_days=0.5)),
])
def test_the_forms_limits_are_read_from_one_setting(value, expected):
    assert limits_from_env(value) == expected
    if expected is not None:
        assert limits_from_env(limits_text(expected)) == expected  # what push writes into the Space reads back


@pytest.mark.parametrize("value, message", [
    ("5", "give on, off, or key=value pairs"),
    ("per_user=5", "'per_user': unknown key"),
    ("per_namespace=0", "'per_namespace'"),
    ("period_days=nan", "'period_days'"),  # NaN days would make every request old: no quota at all
    ("waiting=1e9", "'waiting'"),
])
def test_a_bad_limits_setting_is_one_line_naming_the_key(value, message):
    with pytest.raises(HarnessError) as error:
        limits_from_env(value)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_namespace_files_its_quota_per_period_whatever_the_case_of_its_name():
    admit = admission(SubmissionLimits(per_namespace=2, period_days=7), "lab", NOW)
    admit([filed("lab/a", 1), filed("lab/b", 8), filed("other/c", 0)])  # one in the period: room for one more
    with pytest.raises(HarnessError, match=r"'lab' has filed 2 requests in the last 7 days.*after 2026-12-07 12:00"):
        admit([filed("lab/a", 1), filed("LAB/b", 6, status="FAILED")])  # failed ones count, and Lab is lab
    with pytest.raises(HarnessError, match="has filed 1 requests"):  # a date that cannot be read counts as recent
        admission(SubmissionLimits(per_namespace=1), "lab", NOW)([filed("lab/a", 30, submitted="yesterday")])


def test_a_full_queue_takes_no_more():
    admit = admission(SubmissionLimits(waiting=2), "new", NOW)
    admit([filed("a/x", 30, "PENDING"), filed("b/y", 30, "FINISHED")])
    with pytest.raises(HarnessError, match="holds 2 waiting requests"):
        admit([filed("a/x", 30, "PENDING"), filed("b/y", 30, "RUNNING")])


def test_checks_are_spaced_so_a_script_at_the_form_cannot_hammer_the_hub(monkeypatch):
    import harness.submission_service as service

    slept = []
    monkeypatch.setattr(service.time, "sleep", slept.append)
    monkeypatch.setattr(service, "_last_start", [float("-inf")])

    class Store:  # the first Hub read of a check, refused at once
        def snapshot(self):
            raise HarnessError("stand-in: no Hub here")

    for _ in range(2):
        with pytest.raises(HarnessError, match="no Hub here"):
            service.submit_through_service("lab/fm", "main", Store(), "all", SubmissionLimits())
    assert slept[0] == 0.0 and service.SPACING_S - 0.5 < slept[1] <= service.SPACING_S
    with pytest.raises(HarnessError, match="not a model repository id"):  # refused before any wait or Hub call
        service.submit_through_service("nope", "main", Store(), "all", SubmissionLimits())
    assert len(slept) == 2


# --- against the Hub stand-in --------------------------------------------------------------------
def seed_repo(hub: HubStandIn, repo_type: str, repo_id: str, commits: list[dict[str, bytes]]) -> list[str]:
    """A repository whose history is `commits` (each the files it leaves), dated by the stand-in."""
    repo = Repo(repo_type, private=False)
    for i, files in enumerate(commits):
        sha = hashlib.sha1(f"{repo_id}-{i}".encode()).hexdigest()
        repo.files = dict(files)
        repo.commits.append(sha)
        repo.snapshots[sha] = dict(files)
        repo.last_commits[sha] = {name: {"id": sha, "title": "upload", "date": f"2026-11-2{i}T00:00:00.000Z"}
                                  for name in files}
    hub.repos[(repo_type, repo_id)] = repo
    return repo.commits


SERVICE = """
import json, sys
from harness.errors import HarnessError
from harness.hub_queue import HubRequestStore
import harness.submission_service as service
from harness.submission_service import limits_from_env, submit_through_service
service.SPACING_S = 0.0  # (the spacing of checks has its own test)
store, limits = HubRequestStore("board/requests"), limits_from_env(sys.argv[1])
for line in sys.stdin:
    model, revision = json.loads(line)
    try:
        request = submit_through_service(model, revision, store, "tiny-tiles", limits)
        print(json.dumps(["filed", request.id, request.commit_sha, request.revision, request.tasks]), flush=True)
    except HarnessError as error:
        print(json.dumps(["refused", str(error)]), flush=True)
"""


def test_the_service_files_a_branch_or_tags_commit_and_refuses_the_rest(tmp_path):
    """The form's path: a branch or a tag is resolved to its commit now and filed on the board's
    tasks; a pull request (anyone may open one: its weights would be scored under the repository's
    name), a raw sha, a bad id, pickled weights and a second filing of one commit are refused in one
    line each; a namespace past its quota is refused before its model is even looked at."""
    with HubStandIn(token=TOKEN) as hub:
        seed_repo(hub, "dataset", "board/requests", [{"README.md": b"# requests\n"}])
        old, main = seed_repo(hub, "model", "lab/fm", [{"model.safetensors": b"v1", "card.yaml": CARD},
                                                       {"model.safetensors": b"v2", "card.yaml": CARD}])
        [stranger] = seed_repo(hub, "model", "lab/fm-pr", [{"model.safetensors": b"anyone's", "card.yaml": CARD}])
        fm = hub.repos[("model", "lab/fm")]
        fm.refs.update({"refs/tags/v1": old, "refs/pr/1": stranger})
        fm.snapshots[stranger] = hub.repos[("model", "lab/fm-pr")].files
        seed_repo(hub, "model", "lab/pickled", [{"pytorch_model.bin": b"pickle", "card.yaml": CARD}])
        seed_repo(hub, "model", "other/fm", [{"model.safetensors": b"w", "card.yaml": CARD}])
        submissions = [("lab/fm", "main"), ("Lab/FM", " main "), ("lab/fm", "refs/pr/1"), ("lab/fm", "pr/1"),
                       ("lab/fm", main), ("../etc/passwd", "main"), ("lab/fm", "a/../../b"), ("lab/pickled", "main"),
                       ("lab/fm", "v1"), ("lab/fm", "no-such-branch"), ("lab/late", "main"), ("other/fm", "main"),
                       ("nobody/none", "main")]
        done = subprocess.run([sys.executable, "-c", SERVICE, "per_namespace=2,period_days=7"],
                              input="".join(json.dumps(s) + "\n" for s in submissions), env=hub_env(hub, tmp_path),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        outcomes = [json.loads(line) for line in done.stdout.splitlines()]
        requests = {name: json.loads(data) for name, data in hub.repos[("dataset", "board/requests")].files.items()
                    if name.startswith("requests/")}
        asked = [path for _, path, _ in hub.log]
    assert len(outcomes) == len(submissions)
    assert outcomes[0] == ["filed", request_id("lab/fm", main), main, "main", "tiny-tiles"]
    assert "already submitted" in outcomes[1][1]  # the Hub's ids ignore case; so does the queue
    assert "no branch or tag 'refs/pr/1'" in outcomes[2][1] and "pull requests are not scored" in outcomes[2][1]
    assert "no branch or tag 'pr/1'" in outcomes[3][1]
    assert "give a branch or tag" in outcomes[4][1]  # a commit sha could be any commit, a pull request's too
    assert "not a model repository id" in outcomes[5][1]
    assert "give a branch or tag" in outcomes[6][1]
    assert "no .safetensors weights" in outcomes[7][1] and "pytorch_model.bin" in outcomes[7][1]
    assert outcomes[8] == ["filed", request_id("lab/fm", old), old, "v1", "tiny-tiles"]  # a tag: its commit
    assert "'lab' has filed 2 requests in the last 7 days" in outcomes[9][1]  # quota first, branch never looked up
    assert "'lab' has filed 2 requests" in outcomes[10][1]
    assert outcomes[11][0] == "filed"  # another namespace is not held back
    assert outcomes[12] == ["refused", "nobody/none: no such public model repository on the Hub: check the name"]
    assert set(requests) == {f"requests/{request_id(m, s)}.json" for m, s in
                             (("lab/fm", main), ("lab/fm", old), ("other/fm", hub.repos[("model", "other/fm")].sha))}
    assert all(r["status"] == "PENDING" and r["tasks"] == "tiny-tiles" for r in requests.values())
    assert not [path for path in asked if "lab/late" in path or "lab/fm-pr" in path]
    assert not [path for path in asked if "/resolve/" in path and path.endswith(".safetensors")]  # no weights fetched


RACE = """
import sys
from harness.hub_queue import HubRequestStore, submit_from_hub

class Racing(HubRequestStore):
    raced = False

    def write(self, request, parent, message):
        if not self.raced:  # a backend claims this very request between the submitter's read and write
            self.raced = True
            head, requests, _ = self.snapshot()
            [mine] = [r for r in requests if r.id == request.id]
            mine.status, mine.claimed_by = "RUNNING", "backend-a"
            HubRequestStore.write(self, mine, head, "claim")
        return HubRequestStore.write(self, request, parent, message)

try:
    submit_from_hub("lab/fm", "main", Racing("board/requests"), "all")
    print("filed")
except Exception as error:
    print("refused:", error)
"""


def test_a_submission_racing_a_claim_does_not_write_the_request_back_to_pending(tmp_path):
    """A request FAILED earlier may be submitted again; if a backend claims it between the
    submitter's read of the queue and its write, the write is refused (412) and the queue read and
    checked again: the request is now RUNNING, so the submission is refused, and the claim stays.
    (The write used to be retried blindly on the new head, setting a running request back to
    PENDING, where a second backend would score it again.)"""
    with HubStandIn(token=TOKEN) as hub:
        [sha] = seed_repo(hub, "model", "lab/fm", [{"model.safetensors": b"w", "card.yaml": CARD}])
        failed = Request(id=request_id("lab/fm", sha), status="FAILED", model_name="lab/fm", hub_id="lab/fm",
                         commit_sha=sha, revision="main", tasks="all", submitted="2026-12-01T00:00:00Z",
                         updated="2026-12-01T00:00:00Z", reason="out of memory")
        path = f"requests/{failed.id}.json"
        seed_repo(hub, "dataset", "board/requests", [{path: failed.model_dump_json().encode()}])
        done = subprocess.run([sys.executable, "-c", RACE], env=hub_env(hub, tmp_path), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        request = json.loads(hub.repos[("dataset", "board/requests")].files[path])
    assert done.stdout.startswith("refused:") and "already submitted" in done.stdout and "RUNNING" in done.stdout
    assert request["status"] == "RUNNING" and request["claimed_by"] == "backend-a"


def test_a_pull_request_ref_is_refused_by_the_cli_too(tmp_path):
    with HubStandIn(token=TOKEN) as hub:
        seed_repo(hub, "dataset", "board/requests", [{"README.md": b"# requests\n"}])
        done = harness(hub_env(hub, tmp_path), "submit", "hf-hub:lab/fm", "--revision", "refs/pr/3", "--requests-repo",
                       "board/requests")
        asked = [path for _, path, _ in hub.log]
    assert done.returncode == 2 and "is a pull request, which anyone may open" in done.stderr
    assert not [path for path in asked if "lab/fm" in path]


FORM = """
import json, sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=90)
app.run()
assert not app.exception, app.exception
shown = []
for model, revision in json.loads(sys.argv[2]):
    [name, branch] = [t for t in app.text_input if t.label in ("Model repository", "Branch or tag")]
    name.set_value(model)
    branch.set_value(revision)
    next(b for b in app.button if b.label == "Submit").click()
    app.run()
    assert not app.exception, app.exception
    queue = [c.value for c in app.caption if c.value.startswith("Requests in")]
    shown.append([[e.value for e in app.success], [e.value for e in app.error], queue])
print(json.dumps([[i.value for i in app.info], shown]))
"""


def test_the_spaces_form_files_with_the_spaces_token_on_a_board_with_no_results_yet(tmp_path):
    """The Space as `push --space --submissions` writes it, on a new board (no result yet): the
    Queue section and its form are there; a good submission is filed on the board's declared tasks
    and shown; a bad one is one line, and nothing is written."""
    from harness.leaderboard.space import space_files

    with HubStandIn(token=TOKEN) as hub:
        seed_repo(hub, "dataset", "board/requests", [{"README.md": b"# requests\n"}])
        seed_repo(hub, "dataset", "board/results", [{"README.md": b"# results\n"}])
        [sha] = seed_repo(hub, "model", "lab/fm", [{"model.safetensors": b"w", "card.yaml": CARD}])
        files = space_files("board/results", "pathology-harness @ git+https://example.org/x@" + "0" * 40,
                            "board/requests", board_tasks=["tiny-tiles"], submissions="on")
        (tmp_path / "app.py").write_text(files["app.py"])
        done = subprocess.run([sys.executable, "-c", FORM, str(tmp_path / "app.py"),
                               json.dumps([["lab/fm", "main"], ["lab/fm;rm -rf", "main"], ["lab/fm", "main"]])],
                              env=hub_env(hub, tmp_path), capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        info, shown = json.loads(done.stdout.strip().splitlines()[-1])
        requests = {n: json.loads(d) for n, d in hub.repos[("dataset", "board/requests")].files.items()
                    if n.startswith("requests/")}
    assert 'os.environ.setdefault("HARNESS_SUBMISSIONS", "per_namespace=5,period_days=7,waiting=100")' in files["app.py"]
    assert "must be able to write that dataset" in files["README.md"]
    assert info == ["No results in board/results yet: submit a model below."]  # not the operator's commands
    (good, [], queued), ([], [bad], _), ([], [again], _) = shown
    assert queued == ["Requests in Hub dataset `board/requests`: 1 PENDING"]  # the queue is read again once filed
    assert good == [f"Filed lab/fm at commit `{sha[:12]}` (main) as `{request_id('lab/fm', sha)}`: PENDING. Its "
                    "results appear here once the backend has scored it."]
    assert bad.startswith("Not filed: ") and "not a model repository id" in bad
    assert "already submitted" in again
    [request] = requests.values()
    assert request["hub_id"] == "lab/fm" and request["commit_sha"] == sha and request["tasks"] == "tiny-tiles"
    assert TOKEN not in done.stdout + done.stderr
    # the operator's log: a line per submission, its untrusted text escaped
    assert f"submission 'lab/fm' @ 'main': filed {request_id('lab/fm', sha)} (PENDING)" in done.stdout
    assert "submission 'lab/fm;rm -rf' @ 'main': refused: \"'lab/fm;rm -rf': not a model repository id" in done.stdout


def test_the_form_needs_a_requests_dataset_and_the_push_a_space(tmp_path):
    from harness.leaderboard.space import space_files

    with pytest.raises(HarnessError, match="give --requests-repo"):
        space_files("board/results", "src", None, submissions="on")
    with pytest.raises(HarnessError, match="'waiting'"):
        space_files("board/results", "src", "board/requests", submissions="waiting=0")
    with pytest.raises(HarnessError, match="the form files the board's 300 tasks in each request"):
        space_files("board/results", "src", "board/requests", board_tasks=[f"task-{i}" for i in range(300)],
                    submissions="on")
    done = harness(dict(os.environ), "push", "--repo", "board/results", "--submissions")
    assert done.returncode == 2 and "give it with --space" in done.stderr
