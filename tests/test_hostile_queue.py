"""Hostile requests, one row each, against both queues: the local folder queue (in process) and the
Hub queue (the loopback stand-in with the real huggingface_hub client). Whatever a request file
or the model repository it names holds, the queue neither jams nor writes outside its work
folder: a file that is not a valid request is listed as INVALID and never acted on; a valid
request that cannot be scored ends FAILED with one line; the good request behind them is scored.

The Hub part is also the soak: 20 good requests and 21 poison ones in one requests dataset.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness.cli import main
from harness.submissions import MAX_ATTEMPTS, RequestStore, queue_table, request_id, run_queue
from tests.support.hub_cli import FILE_REQUESTS, HARNESS, TOKEN, hub_env
from tests.support.hub_standin import HubStandIn

SMALL_ARCH = "vit_tiny_patch16_224"
SMALL_KWARGS = {"img_size": 64, "depth": 2}  # a 64 px, two-block ViT: scored in a fraction of a second
SMALL_CARD = {"architecture": SMALL_ARCH, "timm_kwargs": SMALL_KWARGS, "input_size": 64, "pooling": "cls",
              "embed_dim": 192}
HUGE_CARD = {**SMALL_CARD, "timm_kwargs": {"embed_dim": 4096, "depth": 48, "num_heads": 32}, "embed_dim": 4096}
WIDE_CARD = {**SMALL_CARD, "timm_kwargs": {"img_size": 64, "embed_dim": 30000, "depth": 12, "num_heads": 1},
             "embed_dim": 30000}  # would allocate ~44 GB
PATH_CARD = {**SMALL_CARD, "timm_kwargs": {**SMALL_KWARGS, "checkpoint_path": "/etc/hostname"}}
SHA = "0123456789abcdef0123456789abcdef01234567"
RETRIEVAL = """
datasets:
  soak-tiles:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 4, val: 1, test: 2}, seed: 5}
tasks:
  soak-retrieval:
    family: retrieval
    dataset: soak-tiles
    main_score: map@5
    params: {bootstrap_resamples: 50}
"""


@pytest.fixture(scope="module")
def small_state() -> dict:
    import timm

    torch.manual_seed(3)
    model = timm.create_model(SMALL_ARCH, num_classes=0, **SMALL_KWARGS)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def request(rid: str, **fields) -> dict:
    base = {"id": rid, "status": "PENDING", "model_name": rid, "tasks": "soak-retrieval",
            "submitted": "2026-12-01T00:00:00Z", "updated": "2026-12-01T00:00:00Z"}
    return {**base, **fields}


def yaml_card(card: dict) -> str:
    import yaml

    return yaml.safe_dump(card, sort_keys=False)


# --- the local folder queue --------------------------------------------------------------------
def local_rows():
    """(name, request file name, request JSON or raw bytes, checkpoint card or None, final status,
    text its reason must hold)."""
    yield "id climbs out", "escape.json", request("../escape"), None, "INVALID", "'id'"
    yield "id is an absolute path", "abs.json", request("/tmp/harness-abs-request"), None, "INVALID", "'id'"
    yield "file name is not its id", "renamed.json", request("other-id"), None, "INVALID", "file name is not its id"
    yield "unknown status", "odd.json", request("odd", status="DONE"), None, "INVALID", "'status'"
    missing = request("partial")
    del missing["tasks"], missing["submitted"]
    yield "fields missing", "partial.json", missing, None, "INVALID", "required key is missing"
    yield "unknown field", "extra.json", request("extra", run_me="rm -rf /"), None, "INVALID", "unknown key"
    yield ("a 10 MB field", "big.json", request("big", reason="x" * 10_000_000), None, "INVALID",
           "more than a request may have")
    yield "null status", "nulls.json", request("nulls", status=None), None, "INVALID", "'status'"
    yield "a 10.9B-parameter card", "huge.json", request("huge"), HUGE_CARD, "FAILED", "above the budget"
    yield "a card that allocates 44 GB", "wide.json", request("wide"), WIDE_CARD, "FAILED", "above the budget"
    yield ("timm_kwargs naming a file", "path.json", request("path"), PATH_CARD, "FAILED",
           "'checkpoint_path' is not an architecture setting")
    yield "a card named '..'", "dots.json", request("dots"), {**SMALL_CARD, "name": ".."}, "FAILED", "key 'name'"
    yield ("a card named as a built-in model", "noise.json", request("noise"), {**SMALL_CARD, "name": "random-noise"},
           "FAILED", "the name of a built-in model")
    yield ("a card with input_size 100000", "pixels.json", request("pixels"), {**SMALL_CARD, "input_size": 100000},
           "FAILED", "key 'input_size'")
    yield ("a card that sets the zoo's local_kwargs", "local.json", request("local"),
           {**SMALL_CARD, "local_kwargs": {"checkpoint_path": "/etc/hostname"}}, "FAILED", "known models only")
    yield ("stopped the queue each time", "crasher.json",
           request("crasher", status="RUNNING", attempts=MAX_ATTEMPTS), SMALL_CARD, "FAILED", "never finished")
    yield "an unknown task", "notask.json", request("notask", tasks="no-such-task"), SMALL_CARD, "FAILED", "no-such-task"
    yield ("good, behind them all", "zz-good.json", request("zz-good", submitted="2026-12-02T00:00:00Z"),
           {**SMALL_CARD, "name": "lab/good"}, "FINISHED", "")


def test_local_queue_fails_each_poison_request_in_one_line_and_scores_the_good_one(tmp_path, small_state, cache_dir):
    store = tmp_path / "work" / "store"
    (store / "requests").mkdir(parents=True)
    registry = tmp_path / "soak.yaml"
    registry.write_text(RETRIEVAL)
    rows = list(local_rows())
    for _, file_name, content, card, _, _ in rows:
        (store / "requests" / file_name).write_text(json.dumps(content))
        if card is not None:
            folder = store / "checkpoints" / content["id"]
            folder.mkdir(parents=True)
            save_file(small_state, str(folder / "model.safetensors"))
            (folder / "card.yaml").write_text(yaml_card(card))
    os.mkfifo(store / "requests" / "fifo.json")  # opened for reading, it waited for a writer for ever
    with open(os.fsencode(store / "requests") + b"/name-\xff.json", "w") as handle:  # not UTF-8: the Queue tab stopped
        handle.write("{}")
    shared = set(cache_dir.glob("embeddings/*/meta.json"))  # the session's cache: other tests' entries
    code = main(["queue", "run", "--requests", str(store), "--output", str(tmp_path / "work" / "results"),
                 "--cache-dir", str(cache_dir), "--include", str(registry)])
    assert code == 1  # some requests FAILED; the queue itself ran to the end
    table = queue_table(None, store)
    invalid = {row["model"]: row for row in table if row["status"] == "INVALID"}
    valid = {row["model"]: row for row in table if row["status"] != "INVALID"}
    failures = []
    for name, file_name, content, _, status, text in rows:
        row = invalid.get(file_name) if status == "INVALID" else valid.get(content["model_name"])
        if row is None or row["status"] != status or text not in (row["reason"] or ""):
            failures.append(f"{name}: {row and (row['status'], row['reason'])} (want {status}, '{text}')")
    assert not failures, "\n".join(failures)
    assert "not a regular file" in invalid["fifo.json"]["reason"]
    assert "'id': required key is missing" in invalid["name-\\udcff.json"]["reason"]
    import pandas as pd

    pd.DataFrame(table)  # the Queue tab's table (pyarrow refused the name's lone surrogate)
    for cell in (cell for row in table for cell in row.values() if isinstance(cell, str)):
        cell.encode("utf-8")  # raises on a lone surrogate
    # nothing written outside the store: the old code saved '../escape' as <store>/escape.json
    assert not (store / "escape.json").exists() and not Path("/tmp/harness-abs-request.json").exists()
    assert sorted(p.name for p in store.iterdir() if p.name != "embeddings") == ["checkpoints", "locks", "requests"]
    assert not list((store / "embeddings").glob("*"))  # each request's embeddings went with it
    assert set(cache_dir.glob("embeddings/*/meta.json")) == shared  # and none went to the shared cache
    good = json.loads((tmp_path / "work" / "results" / "lab--good" / "soak-retrieval.json").read_text())
    assert good["status"] == "ok"


def test_an_exception_of_any_kind_fails_its_request_and_the_queue_goes_on(tmp_path):
    """What the runner does not turn into a result (allocator, timm, Hub client errors) still ends
    the request FAILED with one line; the traceback goes to the log only."""
    store = RequestStore(tmp_path)
    (tmp_path / "requests").mkdir()
    for rid in ("a-boom", "b-good"):
        (tmp_path / "requests" / f"{rid}.json").write_text(json.dumps(request(rid, submitted=f"2026-12-0{len(rid)}")))
    logged = []

    def score(req, checkpoint):
        if req.id == "a-boom":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 120000000000 bytes\n"
                               "second line of the message")
        return {"soak-retrieval": ("ok", None)}

    done = run_queue(store, score, log=logged.append)
    assert [(r.id, r.status) for r in done] == [("a-boom", "FAILED"), ("b-good", "FINISHED")]
    assert done[0].reason == "*: RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate " \
                             "120000000000 bytes"
    assert any("Traceback" in line for line in logged)
    assert all(r["status"] in ("FAILED", "FINISHED") for r in queue_table(None, tmp_path))


@pytest.mark.parametrize("keep", [False, True])
def test_a_requests_embeddings_are_removed_when_it_ends_unless_kept(tmp_path, keep):
    """A backend that kept every submission's embeddings would fill its disk and then fail every
    later request: each request's folder goes when it ends, failed or finished."""
    store = RequestStore(tmp_path)
    (tmp_path / "requests").mkdir()
    for rid in ("a-boom", "b-good"):
        (tmp_path / "requests" / f"{rid}.json").write_text(json.dumps(request(rid, submitted=f"2026-12-0{len(rid)}")))
    seen = {}

    def score(req, checkpoint):
        folder = store.embeddings_dir(req.id)
        (folder / "entry").mkdir(parents=True)
        (folder / "entry" / "embeddings.npy").write_bytes(b"x" * 1000)
        seen[req.id] = folder
        if req.id == "a-boom":
            raise RuntimeError("out of memory")
        return {"soak-retrieval": ("ok", None)}

    done = run_queue(store, score, log=lambda line: None, keep_embeddings=keep)
    assert [r.status for r in done] == ["FAILED", "FINISHED"]
    assert set(seen) == {"a-boom", "b-good"} and all(f.parent == tmp_path / "embeddings" for f in seen.values())
    assert [f.exists() for f in seen.values()] == [keep, keep]


# --- the Hub queue, and the soak ---------------------------------------------------------------
UPLOAD_ALL = """
import json, sys
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi
api = HfApi()
plan = json.loads(Path(sys.argv[1]).read_text())
shas = {}
for repo, files in plan["models"].items():
    api.create_repo(repo, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=path) for name, path in files.items()]
    shas[repo] = api.create_commit(repo, ops, commit_message="upload").oid
print(json.dumps(shas))
"""

WRITE_REQUESTS = """
import json, sys
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi
api = HfApi()
requests = json.loads(Path(sys.argv[1]).read_text())
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
ops = [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode()) for name, data in requests.items()]
api.create_commit("lab/requests", ops, commit_message="requests", repo_type="dataset")
"""


def run_hub_python(env, code, *args) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_hub_queue_soak_twenty_good_and_twenty_one_poison_requests(tmp_path, small_state):
    weights = tmp_path / "model.safetensors"
    save_file(small_state, str(weights))
    wrong_keys = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(3)}, str(wrong_keys))
    keys = sorted(small_state)
    shards = [tmp_path / f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    for i, shard in enumerate(shards):  # the first shard alone was scored, and failed on its missing keys
        save_file({k: small_state[k].contiguous() for k in keys[i::2]}, str(shard))

    def card_file(name: str, card: dict | str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(card if isinstance(card, str) else yaml_card(card))
        return str(path)

    good_card = card_file("good", SMALL_CARD)
    models = {f"lab/good-{i:02d}": {"model.safetensors": str(weights), "card.yaml": good_card} for i in range(20)}
    poison_repos = {
        "lab/huge": {"model.safetensors": str(weights), "card.yaml": card_file("huge", HUGE_CARD)},
        "lab/wide": {"model.safetensors": str(weights), "card.yaml": card_file("wide", WIDE_CARD)},
        "lab/path": {"model.safetensors": str(weights), "card.yaml": card_file("path", PATH_CARD)},
        "lab/pixels": {"model.safetensors": str(weights), "card.yaml": card_file("pixels", {**SMALL_CARD,
                                                                                           "input_size": 100000})},
        "lab/zoo-keys": {"model.safetensors": str(weights), "card.yaml": card_file("zoo", {**SMALL_CARD,
                                                                                         "local_architecture": "x"})},
        "lab/big-card": {"model.safetensors": str(weights), "card.yaml": card_file("big", yaml_card(SMALL_CARD)
                                                                                   + "# " + "x" * 200_000 + "\n")},
        "lab/no-weights": {"card.yaml": good_card},
        "lab/sharded": {shards[0].name: str(shards[0]), shards[1].name: str(shards[1]), "card.yaml": good_card},
        "lab/wrong-keys": {"model.safetensors": str(wrong_keys), "card.yaml": good_card},
        "lab/notask": {"model.safetensors": str(weights), "card.yaml": good_card},
    }
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"models": {**models, **poison_repos}}))
    with HubStandIn(token=TOKEN) as hub:
        env = hub_env(hub, tmp_path)
        shas = json.loads(run_hub_python(env, UPLOAD_ALL, str(plan)).strip().splitlines()[-1])
        files: dict[str, str] = {}

        def add(hub_id: str | None, sha: str | None, name: str | None = None, **fields) -> None:
            rid = fields.pop("id", None) or request_id(hub_id or "lab/none", sha or SHA)
            body = request(rid, hub_id=hub_id, commit_sha=sha, model_name=hub_id or "x", revision="main", **fields)
            files[name or f"{rid}.json"] = json.dumps(body)

        for i, repo in enumerate(models):
            edited = {"card": {**SMALL_CARD, "mean": [0.0, 0.0, 0.0], "std": [9.0, 9.0, 9.0]}} if i < 3 else {}
            add(repo, shas[repo], submitted=f"2026-12-01T00:00:{i:02d}Z", **edited)  # an edited card is not read
        for repo in poison_repos:
            if repo != "lab/notask":
                add(repo, shas[repo], submitted="2026-11-30T00:00:00Z")
        poison_expected = {request_id(r, shas[r]): text for r, text in {
            "lab/huge": "above the budget", "lab/wide": "above the budget",
            "lab/path": "'checkpoint_path' is not an architecture setting", "lab/pixels": "key 'input_size'",
            "lab/zoo-keys": "known models only", "lab/big-card": "a model card of",
            "lab/no-weights": "no .safetensors weights", "lab/wrong-keys": "keys do not match",
            "lab/sharded": "the weights are split over 2 files (model-00001-of-00002.safetensors, ...)"}.items()}
        good = shas["lab/good-00"]
        add("lab/good-00", SHA, submitted="2026-11-30T00:00:01Z")  # pinned to a commit the repo does not have
        poison_expected[request_id("lab/good-00", SHA)] = "downloading the weights"
        rid = request_id("lab/crasher", good)
        files[f"{rid}.json"] = json.dumps(request(rid, hub_id="lab/crasher", commit_sha=good, model_name="lab/crasher",
                                                  status="RUNNING", claimed_by="backend-a", attempts=MAX_ATTEMPTS))
        poison_expected[rid] = "never finished"
        add("lab/notask", shas["lab/notask"], tasks="no-such-task")
        poison_expected[request_id("lab/notask", shas["lab/notask"])] = "no-such-task"
        invalid_expected = {
            "null-hub.json": ("null-hub", {"hub_id": None, "commit_sha": good}, "names its model repository"),
            "climb.json": ("../climb", {"hub_id": "lab/good-03", "commit_sha": good}, "'id'"),
            "abs.json": ("/tmp/harness-hub-abs", {"hub_id": "lab/good-03", "commit_sha": good}, "'id'"),
            "lab--good-03--unpinned.json": ("lab--good-03--unpinned", {"hub_id": "lab/good-03", "commit_sha": None}, "not pinned"),
            "renamed.json": (request_id("lab/good-04", good), {"hub_id": "lab/good-04", "commit_sha": good},
                             "file name is not its id"),
            "odd-status.json": (request_id("lab/good-05", SHA), {"hub_id": "lab/good-05", "commit_sha": SHA,
                                                                 "status": "DONE"}, "'status'"),
            "dots-hub.json": ("dots", {"hub_id": "../etc", "commit_sha": good}, "'hub_id'"),
            "huge-field.json": ("huge-field", {"reason": "x" * 10_000_000}, "more than a request may have"),
        }
        for name, (rid, fields, _) in invalid_expected.items():
            files[name] = json.dumps(request(rid, model_name="x", **fields))
        files["missing.json"] = json.dumps({"id": "missing", "status": "PENDING"})
        invalid_expected["missing.json"] = ("missing", {}, "required key is missing")
        assert len(poison_expected) + len(invalid_expected) == 21
        requests_plan = tmp_path / "requests.json"
        requests_plan.write_text(json.dumps(files))
        run_hub_python(env, WRITE_REQUESTS, str(requests_plan))

        registry = tmp_path / "soak.yaml"
        registry.write_text(RETRIEVAL)
        work = tmp_path / "work"
        done = subprocess.run(
            [HARNESS, "queue", "run", "--requests-repo", "lab/requests",
             "--results-repo", "lab/results", "--output", str(work / "results"), "--cache-dir",
             str(work / "cache"), "--workdir", str(work / "requests"), "--backend-id", "backend-a",
             "--include", str(registry)], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 1, done.stderr[-3000:]  # some FAILED; the backend itself ran to the end
        final = {name: json.loads(data) for name, data in hub.repos[("dataset", "lab/requests")].files.items()
                 if name.startswith("requests/")}
        results = hub.repos[("dataset", "lab/results")].files

    by_id = {body["id"]: body for name, body in final.items() if name.removeprefix("requests/") not in invalid_expected}
    finished = [b for b in by_id.values() if b["status"] == "FINISHED"]
    failed = {rid: b for rid, b in by_id.items() if b["status"] == "FAILED"}
    assert len(finished) == 20 and all(b["hub_id"].startswith("lab/good-") for b in finished)
    assert set(failed) == set(poison_expected), sorted(set(failed) ^ set(poison_expected))
    wrong = [f"{rid}: {failed[rid]['reason']}" for rid, text in poison_expected.items() if text not in failed[rid]["reason"]]
    assert not wrong, "\n".join(wrong)
    assert all(len(b["reason"]) <= 500 for b in failed.values())
    assert not [b for b in by_id.values() if b["status"] in ("RUNNING", "PENDING")]
    # files that are not valid requests are listed, untouched, never scored
    for name, (_, _, text) in invalid_expected.items():
        assert json.loads(files[name]) == final[f"requests/{name}"], name
    log = " ".join(done.stderr.split())
    unlisted = [name for name, (_, _, text) in invalid_expected.items()
                if f"lab/requests/requests/{name}: not acted on (" not in log or text not in log]
    assert not unlisted, log[-3000:]
    # every good request scored the same weights the same way: the edited cards in three requests were not read
    scores = {json.loads(data)["main_score"]["value"] for name, data in results.items()
              if name.startswith("results/lab--good-") and name.endswith("soak-retrieval.json")}
    assert len(scores) == 1
    # nothing written outside the work folder; no stray checkpoint folder named by a request
    assert not Path("/tmp/harness-hub-abs").exists() and not (tmp_path / "climb").exists()
    assert {p.name for p in (work / "requests" / "checkpoints").iterdir()} <= set(by_id)
    assert TOKEN not in done.stdout + done.stderr
    # the 200 kB card was refused by the size the Hub lists, and its weights were not fetched either
    assert not [path for _, path, _ in hub.log if path.startswith("/lab/big-card/resolve/")]


QUEUE_ORDER = """
import json, sys
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi
from harness.hub_queue import HubRequestStore, run_hub_queue
api = HfApi()
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
for batch in json.loads(Path(sys.argv[1]).read_text()):  # one commit per batch of {file name: request JSON}
    ops = [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode())
           for name, data in batch.items()]
    api.create_commit("lab/requests", ops, commit_message="requests", repo_type="dataset")
store = HubRequestStore("lab/requests")
_, requests, invalid = store.snapshot()
print(json.dumps([[r.id for r in requests], [list(i) for i in invalid]]))
from harness.submissions import queue_table
print(json.dumps([[row["model"], row["queued"]] for row in queue_table("lab/requests", None)]))
claimed = []
run_hub_queue(store, "backend-a", Path(sys.argv[2]), score=lambda request, folder: {},
              publish=lambda request: None, log=lambda line: claimed.append(line.split(":")[0])
              if line.endswith("RUNNING on backend-a") else None)
print(json.dumps(claimed))
"""


def test_hub_queue_order_is_the_hubs_not_what_a_request_file_claims(tmp_path):
    """A request edited to claim an earlier `submitted` does not jump the queue: the backend takes
    requests in the order the Hub's commits wrote them (their `submitted` orders only requests
    written by one commit), and claims them in that order. A request file over the size limit, or
    a file in a folder under requests/, is never downloaded."""
    def filed(repo: str, submitted: str, **fields) -> tuple[str, str]:
        rid = request_id(repo, SHA)
        return f"{rid}.json", json.dumps(request(rid, hub_id=repo, commit_sha=SHA, model_name=repo, revision="main",
                                                 submitted=submitted, **fields))

    big = "x" * 100_000
    commits = [dict([filed("lab/first", "2026-12-06T10:00:00Z")]),
               dict([filed("lab/second", "2026-12-06T10:30:00Z"), filed("lab/third", "2026-12-06T09:00:00Z")]),
               dict([filed("lab/jumper", "2000-01-01T00:00:00Z")]),  # filed last, claiming to be first
               {"oversized.json": json.dumps(request("oversized", reason=big)),
                "nested/big.json": json.dumps(request("big", reason=big))}]
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "commits.json"
        plan.write_text(json.dumps(commits))
        lines = run_hub_python(hub_env(hub, tmp_path), QUEUE_ORDER, str(plan), str(tmp_path / "work"))
    (order, invalid), queued, claimed = (json.loads(line) for line in lines.strip().splitlines()[-3:])
    expected = [request_id(repo, SHA) for repo in ("lab/first", "lab/third", "lab/second", "lab/jumper")]
    assert order == expected
    assert claimed == expected  # each claimed in that order (and failed: no such model repository)
    # `queue list` and the Queue tab show the Hub's dates that make this order, not the files' claims
    assert [model for model, _ in queued[:4]] == ["lab/first", "lab/third", "lab/second", "lab/jumper"]
    dates = [when for _, when in queued[:4]]
    assert dates == sorted(dates) and dates[0] > "2026" and dates[1] == dates[2] < dates[3]
    assert invalid == [["oversized.json", f"{len(commits[3]['oversized.json']):,} bytes, more than a request may "
                                          "have (65,536); not downloaded"]]
    fetched = [path for method, path, _ in hub.log if "/resolve/" in path]
    assert fetched and not [path for path in fetched if path.endswith(("oversized.json", "big.json"))]


def test_a_flood_from_one_namespace_takes_turns_with_the_others(tmp_path):
    """Four requests from one org, filed first, and one each from two other orgs, filed after: the
    backend takes one of the flood, then the others' requests, then the rest of the flood (each
    namespace's turn counts its requests claimed or ended since a request arrived), not the whole
    flood first. `queue list` shows the order the backend will follow."""
    def filed(repo: str, submitted: str) -> tuple[str, str]:
        rid = request_id(repo, SHA)
        return f"{rid}.json", json.dumps(request(rid, hub_id=repo, commit_sha=SHA, model_name=repo, revision="main",
                                                 submitted=submitted))

    flood = [f"flood/m{i}" for i in range(4)]
    commits = [dict(filed(repo, f"2026-12-06T10:0{i}:00Z") for i, repo in enumerate(flood)),
               dict([filed("lab/one", "2026-12-06T11:00:00Z")]), dict([filed("Other/two", "2026-12-06T12:00:00Z")])]
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "commits.json"
        plan.write_text(json.dumps(commits))
        lines = run_hub_python(hub_env(hub, tmp_path), QUEUE_ORDER, str(plan), str(tmp_path / "work"))
    (order, _), queued, claimed = (json.loads(line) for line in lines.strip().splitlines()[-3:])
    # nothing served yet: oldest first
    assert order == [request_id(repo, SHA) for repo in (*flood, "lab/one", "Other/two")]
    assert claimed == [request_id(repo, SHA) for repo in ("flood/m0", "lab/one", "Other/two", *flood[1:])]


def test_within_one_namespace_the_older_request_goes_first_whatever_was_served_between():
    """lab's r1 was filed before its r0 was scored, r2 after: r1 has had a service since it arrived and
    r2 none, yet r2 must not overtake r1 (their namespace's turn is the older one's); other's request,
    with no service at all, goes first."""
    from datetime import datetime, timedelta, timezone

    from harness.hub_queue import fair_order
    from harness.submissions import Request

    start = datetime(2026, 12, 6, tzinfo=timezone.utc)
    filed = {"lab-r0": ("lab/r0", "FINISHED", 10), "lab-r1": ("lab/r1", "PENDING", 5),
             "lab-r2": ("lab/r2", "PENDING", 12), "other-y1": ("other/y1", "PENDING", 6)}
    requests = [Request.model_validate(request(rid, hub_id=repo, model_name=repo, commit_sha=SHA, status=status))
                for rid, (repo, status, _) in filed.items()]
    written = {rid: start + timedelta(minutes=minute) for rid, (_, _, minute) in filed.items()}
    assert [r.id for r in fair_order(requests, written)] == ["other-y1", "lab-r1", "lab-r2", "lab-r0"]


def test_the_queue_order_counts_services_as_its_definition_does_on_random_queues():
    """fair_order counts each namespace's services since a request arrived by bisecting the sorted
    dates (counted one by one, the work grew as the square of a flood, at every snapshot): the order
    equals the one-by-one count's on random queues of several namespaces, with requests the Hub has
    not dated and dates shared by several requests."""
    import random
    from datetime import datetime, timedelta, timezone

    from harness.hub_queue import IN_QUEUE, fair_order, namespace
    from harness.submissions import Request

    def by_definition(requests, written):  # the order as its docstring states it, counted one by one
        never = datetime.max.replace(tzinfo=timezone.utc)
        when = lambda r: written.get(r.id, never)  # noqa: E731
        served = {}
        for r in requests:
            if r.status != "PENDING" and r.id in written:
                served.setdefault(namespace(r), []).append(written[r.id])
        turn, latest = {}, {}
        for r in sorted((r for r in requests if r.status in IN_QUEUE), key=lambda r: (when(r), r.submitted, r.id)):
            since = sum(date > when(r) for date in served.get(namespace(r), []))
            turn[r.id] = latest[namespace(r)] = max(since, latest.get(namespace(r), 0))
        return sorted(requests, key=lambda r: (1, 0, never, r.submitted, r.id) if r.status not in IN_QUEUE
                      else (0, turn[r.id], when(r), r.submitted, r.id))

    rng = random.Random(7)
    start = datetime(2026, 12, 6, tzinfo=timezone.utc)
    for trial in range(30):
        requests, written = [], {}
        for i in range(rng.randint(1, 60)):
            repo = f"{rng.choice(['flood', 'lab', 'other', 'Lab'])}/m{i}"
            rid = f"{trial}-{i}"
            requests.append(Request.model_validate(request(
                rid, hub_id=repo, model_name=repo, commit_sha=SHA,
                status=rng.choice(["PENDING", "PENDING", "RUNNING", "FINISHED", "FAILED"]),
                submitted=f"2026-12-0{rng.randint(1, 5)}T00:00:00Z")))
            if rng.random() < 0.9:  # some not dated by the Hub
                written[rid] = start + timedelta(minutes=rng.randint(0, 20))  # shared dates too
        assert [r.id for r in fair_order(requests, written)] == [r.id for r in by_definition(requests, written)]


LEASE = FILE_REQUESTS + """
for lease in (timedelta(hours=24), timedelta(0)):  # the claims were written just now; then "a day later"
    claimed = []
    run_hub_queue(HubRequestStore("lab/requests"), "backend-a", Path(sys.argv[2]), score=lambda request, folder: {},
                  publish=lambda request: None, lease=lease,
                  log=lambda line: claimed.append(line.split(":")[0]) if line.endswith("RUNNING on backend-a") else None)
    print(json.dumps(claimed))
"""


def test_another_backends_claim_is_taken_over_by_the_hubs_clock_not_the_files_updated(tmp_path):
    """A RUNNING claim is left to its backend until the Hub's date of the commit that wrote it is older
    than the lease. A claim whose file says it was updated in 2000 is not taken over at once (the
    old code did: a live claim scored twice), and one that says 2999 is taken over once the lease has
    passed (the old code never did: a request that no backend would ever score)."""
    files = {}
    for repo, updated in (("lab/says-2000", "2000-01-01T00:00:00Z"), ("lab/says-2999", "2999-01-01T00:00:00Z")):
        rid = request_id(repo, SHA)
        files[f"{rid}.json"] = json.dumps(request(rid, hub_id=repo, commit_sha=SHA, model_name=repo, status="RUNNING",
                                                  claimed_by="backend-z", attempts=1, updated=updated))
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "claims.json"
        plan.write_text(json.dumps(files))
        lines = run_hub_python(hub_env(hub, tmp_path), LEASE, str(plan), str(tmp_path / "work"))
    within_lease, after_lease = (json.loads(line) for line in lines.strip().splitlines()[-2:])
    assert within_lease == []
    assert after_lease == [request_id(repo, SHA) for repo in ("lab/says-2000", "lab/says-2999")]


SWEEP = FILE_REQUESTS + """
run_hub_queue(HubRequestStore("lab/requests"), "backend-a", Path(sys.argv[2]), score=lambda request, folder: {},
              publish=lambda request: None, log=print)
"""


def test_folders_of_requests_that_ended_elsewhere_are_removed_at_start(tmp_path):
    """A backend killed mid-request whose claim another backend took over and finished would keep
    that request's checkpoint and embeddings on its disk for good: its next start removes them.
    Folders of requests still waiting (or that the queue does not know) stay."""
    work, files, ids = tmp_path / "work", {}, {}
    for repo, status in (("lab/finished-elsewhere", "FINISHED"), ("lab/failed-elsewhere", "FAILED"),
                         ("lab/claimed-by-b", "RUNNING")):
        rid = ids[status] = request_id(repo, SHA)
        files[f"{rid}.json"] = json.dumps(request(rid, hub_id=repo, commit_sha=SHA, model_name=repo, status=status,
                                                  claimed_by="backend-b", attempts=1))
        for parent in ("checkpoints", "embeddings"):
            (work / parent / rid / "part").mkdir(parents=True)
    (work / "embeddings" / "not-a-request" / "part").mkdir(parents=True)
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "requests.json"
        plan.write_text(json.dumps(files))
        run_hub_python(hub_env(hub, tmp_path), SWEEP, str(plan), str(work))
    for parent in ("checkpoints", "embeddings"):
        left = {p.name for p in (work / parent).iterdir()}
        assert ids["FINISHED"] not in left and ids["FAILED"] not in left
        assert ids["RUNNING"] in left  # backend-b's live claim: its lease has not passed
    assert (work / "embeddings" / "not-a-request").is_dir()


RESET_ATTEMPTS = FILE_REQUESTS + """
hub_queue.fetch_checkpoint = lambda request, folder: folder
scored = []
store = HubRequestStore("lab/requests")
run_hub_queue(store, "backend-a", Path(sys.argv[2]), score=lambda request, folder: scored.append(request.id) or {},
              publish=lambda request: None, log=lambda line: None)
_, requests, _ = store.snapshot()
print(json.dumps([scored, {r.id: [r.status, r.attempts] for r in requests}]))
"""


def test_a_request_whose_attempts_were_reset_by_hand_is_not_started_again(tmp_path):
    """A request that killed this backend at each of its 3 starts, its file's `attempts` then set back
    to 0 by a writer of the requests dataset: the backend counts its own starts (<workdir>/attempts)
    and fails it instead of starting it a fourth time. A fresh request is scored and its start counted."""
    work, files = tmp_path / "work", {}
    poison, fresh = request_id("lab/poison", SHA), request_id("lab/fresh", SHA)
    files[f"{poison}.json"] = json.dumps(request(poison, hub_id="lab/poison", commit_sha=SHA, model_name="lab/poison",
                                                 status="RUNNING", claimed_by="backend-a", attempts=0))
    files[f"{fresh}.json"] = json.dumps(request(fresh, hub_id="lab/fresh", commit_sha=SHA, model_name="lab/fresh"))
    (work / "attempts").mkdir(parents=True)
    (work / "attempts" / poison).write_text("3\n")
    with HubStandIn(token=TOKEN) as hub:
        plan = tmp_path / "requests.json"
        plan.write_text(json.dumps(files))
        lines = run_hub_python(hub_env(hub, tmp_path), RESET_ATTEMPTS, str(plan), str(work))
    scored, states = json.loads(lines.strip().splitlines()[-1])
    assert scored == [fresh]
    assert states[poison] == ["FAILED", 3] and states[fresh] == ["FINISHED", 1]
    assert (work / "attempts" / fresh).read_text().strip() == "1"


RENEWAL = """
import json, sys, time
from datetime import timedelta
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi
import harness.hub_queue as hub_queue
from harness.hub_queue import HubRequestStore, run_hub_queue
hub_queue.fetch_checkpoint = lambda request, folder: folder  # no model repository: the scoring is what is timed
api = HfApi()
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
name, data = json.loads(sys.argv[1])
api.create_commit("lab/requests", [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode())],
                  commit_message="submit", repo_type="dataset")
store, dates = HubRequestStore("lab/requests"), []

def score(request, folder):  # a long scoring: the claim's Hub date read at its start and at its end
    for wait in (0.1, 1.5):
        time.sleep(wait)
        watcher = HubRequestStore("lab/requests")
        watcher.snapshot()
        dates.append(watcher.arrived[request.id].isoformat())
    return {"t": ("ok", None)}

run_hub_queue(store, "backend-a", Path(sys.argv[2]), score=score, publish=lambda request: None,
              renew_every=timedelta(seconds=0.3), log=lambda line: None)
_, [request], _ = store.snapshot()
print(json.dumps([dates, request.status]))
"""


def test_a_long_scoring_renews_its_claim_so_it_is_not_taken_for_dead(tmp_path):
    """While a request is scored, the backend commits its claim again at each renewal: the Hub's date
    of the claim (what another backend's lease is judged by) moves forward during the scoring, and
    the renewals stop before the outcome is written (the request ends FINISHED, not RUNNING)."""
    rid = request_id("lab/slow", SHA)
    filed = [f"{rid}.json", json.dumps(request(rid, hub_id="lab/slow", commit_sha=SHA, model_name="lab/slow"))]
    with HubStandIn(token=TOKEN) as hub:
        lines = run_hub_python(hub_env(hub, tmp_path), RENEWAL, json.dumps(filed), str(tmp_path / "work"))
        commits = [path for method, path, _ in hub.log if method == "POST" and "/commit/" in path]
    dates, status = json.loads(lines.strip().splitlines()[-1])
    assert dates[1] > dates[0]  # renewed while scoring
    assert status == "FINISHED"
    assert len(commits) >= 1 + 1 + 3 + 1  # submit, claim, renewals (about 1.6 s / 0.3 s), outcome


SNAPSHOTS = """
import json, sys
from huggingface_hub import CommitOperationAdd, HfApi
from harness.hub_queue import HubRequestStore
api = HfApi()
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
files = json.loads(sys.argv[1])
api.create_commit("lab/requests", [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode())
                                   for name, data in files.items()], commit_message="history", repo_type="dataset")
store = HubRequestStore("lab/requests")
for step in range(3):
    print("snapshot", step, flush=True)
    _, requests, invalid = store.snapshot()
    print(json.dumps({r.id: r.status for r in requests}), flush=True)
    name = sorted(files)[step]  # one request changes between snapshots, as a claim or an outcome does
    changed = json.loads(files[name]) | {"status": "FAILED", "reason": f"step {step}"}
    api.create_commit("lab/requests", [CommitOperationAdd(path_in_repo=f"requests/{name}",
                                                          path_or_fileobj=json.dumps(changed).encode())],
                      commit_message="outcome", repo_type="dataset")
"""


def test_a_long_queue_history_costs_the_backend_one_call_per_step_not_one_per_request(tmp_path):
    """A board's requests dataset keeps every request ever filed. Each snapshot (one per step of the
    backend's loop) reads only the request files whose blob is not in the local Hub cache: with 60 files
    and one changed per step, a later snapshot makes a handful of calls (the listing, the changed
    file, the dates of the active requests), where a snapshot download asked about all 60 again; and
    what it returns is the new content, not a stale copy."""
    files = {}
    for i in range(60):
        rid = request_id(f"lab/m{i:02d}", SHA)
        files[f"{rid}.json"] = json.dumps(request(rid, hub_id=f"lab/m{i:02d}", commit_sha=SHA, model_name=f"m{i}",
                                                  status="FINISHED" if i else "PENDING"))
    with HubStandIn(token=TOKEN) as hub:
        lines = run_hub_python(hub_env(hub, tmp_path), SNAPSHOTS, json.dumps(files))
    statuses = [json.loads(line) for line in lines.splitlines() if not line.startswith("snapshot")]
    calls = [0]  # the calls between one commit and the next: one snapshot's (a commit's preupload call aside)
    for method, path, _ in hub.log:
        if "/commit/" in path:
            calls.append(0)
        elif "/preupload/" not in path:
            calls[-1] += 1
    calls = calls[1:-1]  # the three snapshots, each between two commits
    assert len(calls) == 3 and calls[0] >= 60 and all(n <= 6 for n in calls[1:]), calls
    names = sorted(files)
    assert statuses[1][names[0][:-5]] == "FAILED" and statuses[2][names[1][:-5]] == "FAILED"
    assert statuses[1][names[1][:-5]] == "FINISHED" and len(statuses[2]) == 60


DAMAGED_BLOB = """
import json, sys
from pathlib import Path
from huggingface_hub import CommitOperationAdd, HfApi, constants
from harness.hub_queue import HubRequestStore
api = HfApi()
api.create_repo("lab/requests", repo_type="dataset", exist_ok=True)
name, data = sys.argv[1], sys.argv[2]
api.create_commit("lab/requests", [CommitOperationAdd(path_in_repo=f"requests/{name}", path_or_fileobj=data.encode())],
                  commit_message="submit", repo_type="dataset")
store = HubRequestStore("lab/requests")
for damage in ("", "cut short", "emptied"):
    [blob] = (Path(constants.HF_HUB_CACHE) / "datasets--lab--requests" / "blobs").iterdir() if damage else [None]
    if damage:
        blob.write_bytes(blob.read_bytes()[:40] if damage == "cut short" else b"")
    _, requests, invalid = store.snapshot()
    print(json.dumps([[r.id for r in requests], invalid]), flush=True)
"""


def test_a_request_whose_cached_copy_was_damaged_is_read_again_from_the_hub(tmp_path):
    """The backend reads a request file from the local Hub cache when its blob is there. A blob cut
    short or emptied there (a full disk, a hand) made the request INVALID for ever, though the Hub
    holds it whole: the queue jammed on it. A cached blob of another size than the Hub lists is now
    downloaded again."""
    rid = request_id("lab/model", SHA)
    data = json.dumps(request(rid, hub_id="lab/model", commit_sha=SHA, model_name="lab/model", revision="main"))
    with HubStandIn(token=TOKEN) as hub:
        lines = run_hub_python(hub_env(hub, tmp_path), DAMAGED_BLOB, f"{rid}.json", data)
    snapshots = [json.loads(line) for line in lines.strip().splitlines()]
    assert snapshots == [[[rid], []]] * 3


FETCH = """
import json, sys
from pathlib import Path
import harness.hub_queue as hub_queue
from harness.errors import HarnessError
from harness.submissions import Request, request_id
hub_queue.WEIGHTS_ROOM = 1 << 20  # 1 MB beside the architecture's float32 bytes (64 MB in use)
fetched, checked = {}, {}
for repo, sha in json.loads(sys.argv[1]).items():
    request = Request(id=request_id(repo, sha), status="RUNNING", model_name=repo, hub_id=repo, commit_sha=sha,
                      tasks="all", submitted="", updated="")
    try:
        folder = hub_queue.fetch_checkpoint(request, Path(sys.argv[2]) / request.id)
        fetched[repo] = sorted(p.name for p in folder.iterdir())
    except HarnessError as error:
        fetched[repo] = str(error)
    try:  # what a submission is checked with before it is queued (the Space's form: no torch there)
        hub_queue.check_hub_model(repo, sha, check_architecture=False)
        checked[repo] = "ok"
    except HarnessError as error:
        checked[repo] = str(error)
print(json.dumps([fetched, checked]))
"""


def test_the_backend_downloads_only_the_weights_it_scores_and_only_within_the_cards_size(tmp_path, small_state):
    """A model repository cannot fill the backend's disk: of its .safetensors only the one scored is
    downloaded, and not at all if the Hub lists it larger than the card's architecture holds. Weights
    split over shards are fetched whole, as their index names them (save_torch_state_dict's files),
    within the same bound; an index that names a file the repository lacks, or a path, downloads
    nothing."""
    from huggingface_hub import save_torch_state_dict

    from harness.models.checkpoint import read_state_dict
    from harness.models.loading import load_encoder
    from harness.models.weight_files import find_weights

    weights, junk = tmp_path / "model.safetensors", tmp_path / "junk.safetensors"
    save_file(small_state, str(weights))
    save_file({"junk": torch.zeros(750_000)}, str(junk))  # 3 MB the backend has no use for
    (tmp_path / "good.yaml").write_text(yaml_card(SMALL_CARD))
    (tmp_path / "shrunk.yaml").write_text(yaml_card({**SMALL_CARD, "timm_kwargs": {**SMALL_KWARGS, "depth": 1}}))
    (tmp_path / "sharded").mkdir()
    save_torch_state_dict(small_state, tmp_path / "sharded", max_shard_size="200KB")
    parts = {p.name: str(p) for p in (tmp_path / "sharded").iterdir()}
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    shard_names = sorted(set(index["weight_map"].values()))
    assert len(shard_names) >= 3, shard_names
    bad_indexes = {}
    for repo, target in (("lab/climbing-index", "../card.yaml"), ("lab/absent-shard", "model-00099-of-00099.safetensors")):
        path = tmp_path / f"{repo.split('/')[1]}.json"
        key = next(iter(index["weight_map"]))
        path.write_text(json.dumps({"weight_map": {**index["weight_map"], key: target}}))
        bad_indexes[repo] = {**parts, "model.safetensors.index.json": str(path), "card.yaml": str(tmp_path / "good.yaml")}
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(2)  # a transformers DINOv2 (as Phikon-v2 is) in save_pretrained's files: built from its config.json
    dinov2 = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=16)).eval()
    dinov2.save_pretrained(tmp_path / "dinov2", max_shard_size="40KB")
    (tmp_path / "dinov2" / "card.yaml").write_text("base: phikon-v2\nembed_dim: 32\n")
    plan = {"models": {"lab/dinov2": {p.name: str(p) for p in (tmp_path / "dinov2").iterdir()},
                       "lab/good": {"model.safetensors": str(weights), "extra.safetensors": str(junk),
                                    "card.yaml": str(tmp_path / "good.yaml")},
                       "lab/shrunk": {"model.safetensors": str(weights), "card.yaml": str(tmp_path / "shrunk.yaml")},
                       "lab/sharded": {**parts, "extra.safetensors": str(junk), "card.yaml": str(tmp_path / "good.yaml")},
                       "lab/sharded-shrunk": {**parts, "card.yaml": str(tmp_path / "shrunk.yaml")},
                       **bad_indexes}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with HubStandIn(token=TOKEN) as hub:
        env = hub_env(hub, tmp_path)
        shas = run_hub_python(env, UPLOAD_ALL, str(tmp_path / "plan.json")).strip().splitlines()[-1]
        fetched, checked = json.loads(run_hub_python(env, FETCH, shas, str(tmp_path / "work")).strip().splitlines()[-1])
    assert fetched["lab/good"] == ["card.yaml", "model.safetensors"]
    assert "model.safetensors is " in fetched["lab/shrunk"] and "more than the card's architecture holds" in \
        fetched["lab/shrunk"]
    assert fetched["lab/sharded"] == sorted(["card.yaml", "model.safetensors.index.json", *shard_names])
    folder = next((tmp_path / "work").glob("lab--sharded--*"))
    state = read_state_dict(find_weights(folder))
    assert sorted(state) == sorted(small_state) and all(torch.equal(state[k], small_state[k]) for k in state)
    assert f"its {len(shard_names)} shards are " in fetched["lab/sharded-shrunk"], fetched["lab/sharded-shrunk"]
    assert "config.json" in fetched["lab/dinov2"], fetched["lab/dinov2"]
    encoder = load_encoder(str(next((tmp_path / "work").glob("lab--dinov2--*"))))
    pixels = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(encoder.module(pixels), dinov2(pixel_values=pixels).last_hidden_state[:, 0])
    assert "each tensor must map to a .safetensors file beside the index" in fetched["lab/climbing-index"]
    assert "names 1 shard(s) the repository does not hold at this commit (e.g. model-00099-of-00099.safetensors)" \
        in fetched["lab/absent-shard"], fetched["lab/absent-shard"]
    # a submission is refused on the same index before it is queued; shards and a DINOv2's config pass
    assert checked["lab/absent-shard"] == fetched["lab/absent-shard"] and checked["lab/climbing-index"] == \
        fetched["lab/climbing-index"]
    assert checked["lab/sharded"] == checked["lab/dinov2"] == checked["lab/good"] == "ok", checked
    downloads = [path for method, path, _ in hub.log if method == "GET" and "/resolve/" in path]
    assert [p for p in downloads if p.startswith("/lab/good/") and p.endswith("/model.safetensors")]
    assert sorted(p.rsplit("/", 1)[1] for p in downloads if p.startswith("/lab/sharded/") and p.endswith(".safetensors")
                  ) == shard_names
    assert not [p for p in downloads if p.endswith("/extra.safetensors")
                or (p.startswith(("/lab/shrunk/", "/lab/sharded-shrunk/", "/lab/climbing-index/", "/lab/absent-shard/"))
                    and p.endswith(".safetensors"))]