"""`queue run --rescore-stale`: a finished submission is scored again when the protocol moves on.

A task's version bumped in the registry (or the suite the backend scores gaining a task) leaves
every finished request's result of it stale on the board, and nothing ever scored it again: the
same weights or commit cannot be queued twice. These tests move the registry under a finished
request, in the local queue (in process) and in the Hub queue (the loopback stand-in, the real
huggingface_hub client), and check what is rescored, what is reused, and that a request goes
round once per state of the registry.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from harness.cli import main
from tests.support.checkpoints import author_files
from tests.support.hub_cli import FILE_REQUESTS
from tests.support.registries import TINY_REGISTRY

SHA = "0123456789abcdef0123456789abcdef01234567"


def registry_at(folder: Path, version: int) -> Path:
    """The tiny registry with tiny-tiles at `version` (tiny-retrieval stays at 1)."""
    path = folder / f"tiny-v{version}.yaml"
    text = TINY_REGISTRY.replace("    family: tile_classification\n",
                                 f"    family: tile_classification\n    version: {version}\n", 1)
    assert text != TINY_REGISTRY
    path.write_text(text)
    return path


def requests_of(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "requests").glob("*.json"))]


def test_a_finished_local_request_is_rescored_once_when_its_task_moves_on(tmp_path, tiny_fm_state, capsys):
    weights, card = author_files(tmp_path / "author", tiny_fm_state)
    store, out, cache = tmp_path / "store", tmp_path / "results", tmp_path / "cache"
    v1, v2 = registry_at(tmp_path, 1), registry_at(tmp_path, 2)
    common = ["--requests", str(store), "--output", str(out), "--cache-dir", str(cache)]
    assert main(["submit", str(weights), "--card", str(card), "--requests", str(store), "--tasks", "tiny-tiles",
                 "--include", str(v1)]) == 0
    assert main(["queue", "run", *common, "--include", str(v1)]) == 0
    [tiles] = out.glob("*/tiny-tiles.json")
    assert json.loads(tiles.read_text())["task_version"] == 1
    capsys.readouterr()

    # the task moves to version 2: without the flag a finished request stays as it is (stale on the board)
    assert main(["queue", "run", *common, "--include", str(v2)]) == 0
    assert json.loads(tiles.read_text())["task_version"] == 1
    assert "rescoring" not in "".join(capsys.readouterr())

    # what a run would rescore, listed first: nothing scored, nothing remembered
    assert main(["queue", "list", *common, "--include", str(v2), "--rescore-stale"]) == 0
    printed = capsys.readouterr().out
    listed = re.sub(r"[\s│]", "", printed)  # the table's cells, their folded lines joined
    assert "┃rescore┃" in listed and "tiny-tilescomputedatversion1ofthetask,whichisatversion2" in listed
    assert "1 of 1 finished request(s) would be scored again by `harness queue run --rescore-stale`" in printed
    assert json.loads(tiles.read_text())["task_version"] == 1 and not (store / "judged").exists()

    assert main(["queue", "run", *common, "--include", str(v2), "--rescore-stale"]) == 0
    said = "".join(capsys.readouterr())
    assert "rescoring (tiny-tiles computed at version 1 of the task, which is at version 2)" in said
    assert json.loads(tiles.read_text())["task_version"] == 2
    [request] = requests_of(store)
    assert request["status"] == "FINISHED" and request["attempts"] == 1 and request["results"] == {"tiny-tiles": "ok"}

    # the board's suite gains a task: only the missing one is scored, the current one reused
    scored_at = tiles.stat().st_mtime_ns
    assert main(["queue", "run", *common, "--include", str(v2), "--rescore-stale", "--tasks", "tiny"]) == 0
    said = "".join(capsys.readouterr())
    assert "rescoring (no result of tiny-retrieval)" in said
    assert tiles.stat().st_mtime_ns == scored_at
    assert json.loads(next(out.glob("*/tiny-retrieval.json")).read_text())["status"] == "ok"

    # nothing out of date: nothing rescored, nothing written
    assert main(["queue", "run", *common, "--include", str(v2), "--rescore-stale", "--tasks", "tiny"]) == 0
    assert "rescoring" not in "".join(capsys.readouterr())
    assert tiles.stat().st_mtime_ns == scored_at


# commits the request files of the JSON file argv[1] ({name: content}), then runs the Hub backend
# twice with rescoring over the results folder argv[4] and the registry argv[3] (workdir argv[2]);
# the scoring is a stand-in that records what it was asked to score, and publishes a current
# result for the waiting request alone (the stale one's stays stale: its data is not on this backend)
RESCORE_TWICE = FILE_REQUESTS + """
from harness.models.model_spec import model_slug
from harness.registry import load_registry
from harness.rescoring import Rescoring
from harness.tasks import FAMILIES
hub_queue.fetch_checkpoint = lambda request, folder: folder
work, registry = Path(sys.argv[2]), load_registry([Path(sys.argv[3])], families=FAMILIES)
store, rounds = HubRequestStore("lab/requests"), []
def publish(request):
    from harness.results import DatasetRecord, MainScore, ModelRecord, ResultStore, TaskResult
    if request.hub_id == "lab/waiting":
        ResultStore(Path(sys.argv[4])).write(model_slug(request.hub_id, "checkpoint"), TaskResult(
            task="tiny-tiles", task_version=2, family="tile_classification", status="ok",
            model=ModelRecord(name=request.hub_id, revision=request.commit_sha),
            dataset=DatasetRecord(name="tiny-tiles", source="synth"), main_score=MainScore(name="balanced_accuracy")))
for _ in range(2):
    scored, reads = [], []
    def shown():
        reads.append(1)
        return Path(sys.argv[4])
    rescoring = Rescoring(registry, FAMILIES, lambda r: registry.select(r.tasks),
                          lambda r: model_slug(r.hub_id, "checkpoint"), shown, work / "judged")
    run_hub_queue(store, "backend-a", work, score=lambda request, folder: scored.append(request.id) or {
                  "tiny-tiles": ("ok", None)}, publish=publish, log=print, rescoring=rescoring)
    rounds.append([scored, len(reads)])
_, requests, _ = store.snapshot()
print(json.dumps([rounds, {r.id: [r.status, r.attempts] for r in requests}]))
"""


def test_the_hub_backend_rescores_a_stale_request_after_the_waiting_ones_and_once(tmp_path):
    """Waiting requests first, then the finished one whose result is stale, whatever starts the
    backend counted for it before (its earlier round ended: the new round is not given up). Not
    rescored: a request whose model folder holds a later commit's result, one whose result is
    current, a failed one. A rescoring that leaves the result stale (the data is not on this
    backend) does not send the request round again on the next start, and the next start reads no
    results: each request was scored or judged at this state of the registry."""
    from harness.models.model_spec import model_slug
    from harness.results import DatasetRecord, MainScore, ModelRecord, ResultStore, TaskResult
    from harness.submissions import request_id
    from tests.support.hub_cli import TOKEN, hub_env
    from tests.support.hub_standin import HubStandIn

    other = "f" * 40
    results, work, files, ids = ResultStore(tmp_path / "shown"), tmp_path / "work", {}, {}
    for repo, status, version, scored_commit in (("lab/waiting", "PENDING", None, None),
                                                 ("lab/stale", "FINISHED", 1, SHA),
                                                 ("lab/superseded", "FINISHED", 1, other),
                                                 ("lab/current", "FINISHED", 2, SHA),
                                                 ("lab/failed", "FAILED", 1, SHA)):
        rid = ids[repo] = request_id(repo, SHA)
        files[f"{rid}.json"] = json.dumps({
            "id": rid, "status": status, "model_name": repo, "hub_id": repo, "commit_sha": SHA, "tasks": "tiny-tiles",
            "submitted": "2026-12-01T00:00:00Z", "updated": "2026-12-01T00:00:00Z",
            "attempts": 0 if status == "PENDING" else 1})
        if version is not None:
            results.write(model_slug(repo, "checkpoint"), TaskResult(
                task="tiny-tiles", task_version=version, family="tile_classification", status="ok",
                model=ModelRecord(name=repo, hub_id=repo, revision=scored_commit),
                dataset=DatasetRecord(name="tiny-tiles", source="synth"),
                main_score=MainScore(name="balanced_accuracy", value=0.5)))
    (work / "attempts").mkdir(parents=True)
    (work / "attempts" / ids["lab/stale"]).write_text("3\n")  # its first round's starts, as a backend counts them
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "requests.json"
        plan.write_text(json.dumps(files))
        done = subprocess.run([sys.executable, "-c", RESCORE_TWICE, str(plan), str(work), str(registry_at(tmp_path, 2)),
                               str(results.root)], env=hub_env(hub, tmp_path), capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout
    ((first, read_first), (second, read_second)), states = json.loads(said.strip().splitlines()[-1])
    assert first == [ids["lab/waiting"], ids["lab/stale"]] and second == []
    # every finished request was judged (or scored) at this state of the registry: the second start
    # does not read the results at all
    assert read_first == 1 and read_second == 0
    assert f"{ids['lab/stale']}: rescoring (tiny-tiles computed at version 1 of the task" in said
    assert states[ids["lab/stale"]] == ["FINISHED", 1] and states[ids["lab/waiting"]] == ["FINISHED", 1]
    assert (work / "attempts" / ids["lab/stale"]).read_text().strip() == "1"
    for untouched in ("lab/superseded", "lab/current"):
        assert states[ids[untouched]] == ["FINISHED", 1]
    assert states[ids["lab/failed"]] == ["FAILED", 1]


def test_results_that_cannot_be_read_rescore_nothing_and_say_so_once(tmp_path):
    """The results dataset unreachable (or not there): the waiting requests were scored, and the
    finished ones are not judged, with one warning, instead of the backend stopping."""
    from harness.errors import HarnessError
    from harness.registry import load_registry
    from harness.rescoring import Rescoring
    from harness.submissions import Request
    from harness.tasks import FAMILIES

    def unreachable() -> Path:
        raise HarnessError("lab/results: reading results failed: the Hub did not answer")

    registry, said = load_registry([registry_at(tmp_path, 2)], families=FAMILIES), []
    rescoring = Rescoring(registry, FAMILIES, lambda r: ["tiny-tiles"], lambda r: r.id, unreachable,
                          tmp_path / "rescored", log=said.append)
    finished = [Request(id=f"m{i}", status="FINISHED", model_name=f"m{i}", tasks="tiny-tiles", submitted="",
                        updated="") for i in range(3)]
    assert [rescoring.why(r) for r in finished] == [None, None, None]
    assert said == ["warning: no finished request is rescored in this run (lab/results: reading results failed: the "
                    "Hub did not answer)"]


# argv as RESCORE_TWICE's: while the backend reads the results, the stale request is written again
# (another backend, which read them earlier, rescored it and marked it FINISHED), then the backend goes on
RESCORED_ELSEWHERE = FILE_REQUESTS + """
from harness.models.model_spec import model_slug
from harness.registry import load_registry
from harness.rescoring import Rescoring
from harness.tasks import FAMILIES
hub_queue.fetch_checkpoint = lambda request, folder: folder
registry, store, scored = load_registry([Path(sys.argv[3])], families=FAMILIES), HubRequestStore("lab/requests"), []
def results():
    api.create_commit("lab/requests", [CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=(
        op.path_or_fileobj.replace(b'"updated": "2026-12-01', b'"updated": "2026-12-02'))) for op in ops],
        commit_message="rescored elsewhere", repo_type="dataset")
    return Path(sys.argv[4])
rescoring = Rescoring(registry, FAMILIES, lambda r: registry.select(r.tasks), lambda r: model_slug(r.hub_id, "checkpoint"),
                      results, Path(sys.argv[2]) / "judged")
run_hub_queue(store, "backend-b", Path(sys.argv[2]), score=lambda request, folder: scored.append(request.id) or {},
              publish=lambda request: None, log=print, rescoring=rescoring)
print(json.dumps(scored))
"""


def test_a_request_written_after_the_results_were_read_is_left_to_the_next_run(tmp_path):
    """Two backends rescoring: this one read the results and judged a request stale, while the other
    rescored it and marked it FINISHED. Its request file holds other bytes than when this run read
    the results, so it is not rescored again on this run's outdated verdict."""
    from harness.models.model_spec import model_slug
    from harness.results import DatasetRecord, MainScore, ModelRecord, ResultStore, TaskResult
    from harness.submissions import request_id
    from tests.support.hub_cli import TOKEN, hub_env
    from tests.support.hub_standin import HubStandIn

    rid, results = request_id("lab/stale", SHA), ResultStore(tmp_path / "shown")
    files = {f"{rid}.json": json.dumps({
        "id": rid, "status": "FINISHED", "model_name": "lab/stale", "hub_id": "lab/stale", "commit_sha": SHA,
        "tasks": "tiny-tiles", "submitted": "2026-12-01T00:00:00Z", "updated": "2026-12-01T00:00:00Z", "attempts": 1})}
    results.write(model_slug("lab/stale", "checkpoint"), TaskResult(
        task="tiny-tiles", task_version=1, family="tile_classification", status="ok",
        model=ModelRecord(name="lab/stale", revision=SHA), dataset=DatasetRecord(name="tiny-tiles", source="synth"),
        main_score=MainScore(name="balanced_accuracy", value=0.5)))
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "requests.json"
        plan.write_text(json.dumps(files))
        done = subprocess.run([sys.executable, "-c", RESCORED_ELSEWHERE, str(plan), str(tmp_path / "work"),
                               str(registry_at(tmp_path, 2)), str(results.root)], env=hub_env(hub, tmp_path),
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert f"{rid}: its request changed since this run read the results" in done.stdout


def test_a_local_request_rescored_by_another_process_meanwhile_is_not_rescored_again(tmp_path):
    """Two `queue run --rescore-stale` on one folder queue: both judged the request stale; one
    rescored it; the other, judging it again under its lock, leaves it."""
    from harness.registry import load_registry
    from harness.rescoring import Rescoring
    from harness.results import DatasetRecord, MainScore, ModelRecord, ResultStore, TaskResult
    from harness.submissions import Request, RequestStore, run_queue
    from harness.tasks import FAMILIES

    store, results = RequestStore(tmp_path / "store"), ResultStore(tmp_path / "results")
    store.save(Request(id="m-0123456789ab", status="FINISHED", model_name="m", weights_sha256="a" * 64,
                       tasks="tiny-tiles", submitted="2026-12-01T00:00:00Z", updated="", attempts=1))
    results.write("m", TaskResult(task="tiny-tiles", task_version=1, family="tile_classification", status="ok",
                                  model=ModelRecord(name="m", weights_sha256="a" * 64),
                                  dataset=DatasetRecord(name="tiny-tiles", source="synth"),
                                  main_score=MainScore(name="balanced_accuracy", value=0.5)))
    registry = load_registry([registry_at(tmp_path, 2)], families=FAMILIES)

    def rescoring() -> Rescoring:
        return Rescoring(registry, FAMILIES, lambda r: ["tiny-tiles"], lambda r: "m", lambda: results.root,
                         store.root / "judged", log=lambda line: None)

    first, second, scored = rescoring(), rescoring(), []
    [request] = store.all()[0]
    assert first.why(request) and second.why(request)  # both judged it stale
    while_scored = []  # the request as the queue's table shows it while it is rescored
    run_queue(store, lambda r, folder: scored.append("first") or while_scored.extend(store.all()[0]) or {
              "tiny-tiles": ("ok", None)}, log=lambda line: None, rescoring=first)
    [running] = while_scored
    assert running.status == "RUNNING" and running.attempts == 1
    assert running.reason == "rescoring: tiny-tiles computed at version 1 of the task, which is at version 2"
    assert store.all()[0][0].reason is None  # ended FINISHED: no reason
    run_queue(store, lambda r, folder: scored.append("second") or {"tiny-tiles": ("ok", None)}, log=lambda line: None,
              rescoring=second)
    assert scored == ["first"]


def test_a_task_skipped_for_want_of_data_is_rescored_once_the_data_is_here(tmp_path, tiny_fm_state, capsys):
    """A backend scored a submission before it had one dataset (that task recorded `skipped`); the
    data arrives later. The registry did not move, but the skipped result is out of date: rescored
    once the data is here (the other task's result reused), and not before."""
    import numpy as np
    from PIL import Image

    weights, card = author_files(tmp_path / "author", tiny_fm_state)
    store, out, data = tmp_path / "store", tmp_path / "results", tmp_path / "data"
    registry = tmp_path / "later.yaml"
    registry.write_text(TINY_REGISTRY.replace("suites:", """  later-retrieval:
    family: retrieval
    dataset: later
    main_score: map@5
    params: {ks: [1, 5], bootstrap_resamples: 50}
suites:""").replace("datasets:", """datasets:
  later:
    source: imagefolder
    path: later
    splits: [train, test]""", 1))
    common = ["--requests", str(store), "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--data-root",
              str(data), "--include", str(registry)]
    assert main(["submit", str(weights), "--card", str(card), "--requests", str(store), "--tasks",
                 "tiny-retrieval,later-retrieval", "--include", str(registry)]) == 0
    assert main(["queue", "run", *common]) == 0
    [later] = out.glob("*/later-retrieval.json")
    [tiny] = out.glob("*/tiny-retrieval.json")
    assert json.loads(later.read_text())["status"] == "skipped"
    scored_at = tiny.stat().st_mtime_ns
    assert main(["queue", "run", *common, "--rescore-stale"]) == 0  # the data is not here yet: nothing to do
    assert "rescoring" not in "".join(capsys.readouterr())

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (data / "later" / split / label).mkdir(parents=True)
            for k in range(3):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    data / "later" / split / label / f"{k}.png")
    assert main(["queue", "list", *common, "--rescore-stale"]) == 0
    assert "later-retrievalskipped,andthedataisherenow" in re.sub(r"[\s│]", "", capsys.readouterr().out)
    assert main(["queue", "run", *common, "--rescore-stale"]) == 0
    assert "rescoring (later-retrieval skipped, and the data is here now)" in "".join(capsys.readouterr())
    assert json.loads(later.read_text())["status"] == "ok" and tiny.stat().st_mtime_ns == scored_at
    assert main(["queue", "run", *common, "--rescore-stale"]) == 0
    assert "rescoring" not in "".join(capsys.readouterr())
