"""The submission queue: validation refuses bad checkpoints, the queue scores, survives a kill,
and never scores the same weights twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness.cli import main
from tests.support.checkpoints import CARD, author_files

HARNESS = str(Path(sys.executable).parent / "harness")


def requests_of(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "requests").glob("*.json"))]


def submit(weights, card, store, capsys=None) -> int:
    from tests.support.registries import TINY_REGISTRY

    registry = Path(store).parent / "tiny-registry.yaml"
    registry.write_text(TINY_REGISTRY)
    return main(["submit", str(weights), "--card", str(card), "--requests", str(store), "--tasks", "tiny-tiles",
                 "--include", str(registry)])


def test_submit_validates_and_files_a_pending_request(tmp_path, tiny_fm_state, capsys):
    weights, card = author_files(tmp_path / "author", tiny_fm_state)
    assert submit(weights, card, tmp_path / "store") == 0
    [request] = requests_of(tmp_path / "store")
    assert request["status"] == "PENDING" and request["embed_dim"] == 192 and request["model_name"] == "lab/tiny-fm"
    import hashlib
    assert request["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    stored = tmp_path / "store" / "checkpoints" / request["id"] / "model.safetensors"
    assert stored.read_bytes() == weights.read_bytes()

    # the same weights again (even renamed) are refused: never scored twice
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "renamed.safetensors").write_bytes(weights.read_bytes())
    capsys.readouterr()
    assert submit(tmp_path / "again" / "renamed.safetensors", card, tmp_path / "store") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"already submitted as '{request['id']}' (PENDING)" in err[0]


def test_a_checkpoint_folder_is_submitted_with_the_card_beside_its_weights(tmp_path, tiny_fm_state, capsys):
    """`harness run --model FOLDER` reads the card in the folder; `harness submit FOLDER` refused the
    same folder ("a local submission needs --card card.yaml") until the card was named again."""
    from tests.support.registries import TINY_REGISTRY

    registry = tmp_path / "tiny-registry.yaml"
    registry.write_text(TINY_REGISTRY)
    weights, _ = author_files(tmp_path / "author", tiny_fm_state)
    argv = ["--requests", str(tmp_path / "store"), "--tasks", "tiny-tiles", "--include", str(registry)]
    assert main(["submit", str(tmp_path / "author"), *argv]) == 0
    [request] = requests_of(tmp_path / "store")
    assert request["status"] == "PENDING" and request["model_name"] == "lab/tiny-fm"
    stored = tmp_path / "store" / "checkpoints" / request["id"]
    assert (stored / "model.safetensors").read_bytes() == weights.read_bytes()
    assert (stored / "card.yaml").read_text() == (tmp_path / "author" / "card.yaml").read_text()
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.safetensors").write_bytes(weights.read_bytes())
    capsys.readouterr()
    assert main(["submit", str(tmp_path / "bare"), *argv]) == 2  # no card anywhere: what to write, one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no card.yaml beside the weights: write one with architecture" in err[0], err


def test_a_sharded_checkpoint_is_submitted_whole_and_hashed_as_one(tmp_path, tiny_fm_state, capsys):
    """Shards with their index (save_torch_state_dict's files) are copied to the store together and
    hashed as one (the index, then each shard); a shard that changes is new weights, the same files
    in another folder are the same weights, refused as already submitted."""
    import hashlib

    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import load_file

    from harness.models.weight_files import find_weights
    from harness.models.weights_digest import weights_sha256
    from tests.support.registries import TINY_REGISTRY

    registry = tmp_path / "tiny-registry.yaml"
    registry.write_text(TINY_REGISTRY)
    author = tmp_path / "author"
    author.mkdir()
    save_torch_state_dict(tiny_fm_state, author, max_shard_size="8MB")
    (author / "card.yaml").write_text(CARD)
    names = sorted(p.name for p in author.iterdir() if p.name != "card.yaml")
    assert len(names) == 4  # three shards and their index
    argv = ["--requests", str(tmp_path / "store"), "--tasks", "tiny-tiles", "--include", str(registry)]
    assert main(["submit", str(author), *argv]) == 0
    [request] = requests_of(tmp_path / "store")
    listing = "".join(f"{name}\t{hashlib.sha256((author / name).read_bytes()).hexdigest()}\n"
                      for name in ["model.safetensors.index.json", *names[:-1]])
    assert request["weights_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    stored = tmp_path / "store" / "checkpoints" / request["id"]
    assert sorted(p.name for p in stored.iterdir()) == sorted(["card.yaml", *names])
    assert all((stored / name).read_bytes() == (author / name).read_bytes() for name in names)
    assert weights_sha256(find_weights(stored), None) == request["weights_sha256"]  # what the backend will compute

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in [*names, "card.yaml"]:
        (copy / name).write_bytes((author / name).read_bytes())
    capsys.readouterr()
    assert main(["submit", str(copy), *argv]) == 2
    assert f"already submitted as '{request['id']}'" in capsys.readouterr().err
    shard = copy / names[0]  # one tensor of one shard changed: other weights
    tensors = load_file(str(shard))
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1
    save_file(tensors, str(shard), metadata={"format": "pt"})
    assert main(["submit", str(copy), *argv]) == 0
    assert len(requests_of(tmp_path / "store")) == 2


def test_a_transformers_dinov2_is_submitted_with_the_config_it_is_built_from(tmp_path, capsys):
    """A transformers DINOv2's network is built from the config.json beside its weights; the submission
    copied the weights and the card only, so its own check failed on the copy ("no config.json")."""
    from transformers import Dinov2Config, Dinov2Model

    from tests.support.registries import TINY_REGISTRY

    registry = tmp_path / "tiny-registry.yaml"
    registry.write_text(TINY_REGISTRY)
    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=16))
    model.save_pretrained(tmp_path / "author")
    (tmp_path / "author" / "card.yaml").write_text("name: lab/phikon-tuned\nbase: phikon-v2\nembed_dim: 32\n")
    assert main(["submit", str(tmp_path / "author"), "--requests", str(tmp_path / "store"), "--tasks", "tiny-tiles",
                 "--include", str(registry)]) == 0, capsys.readouterr().err
    [request] = requests_of(tmp_path / "store")
    assert request["embed_dim"] == 32 and request["n_parameters"] == sum(p.numel() for p in model.parameters())
    stored = tmp_path / "store" / "checkpoints" / request["id"]
    assert (stored / "config.json").read_bytes() == (tmp_path / "author" / "config.json").read_bytes()


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['PAYLOAD_MARKER'])}",))


@pytest.mark.parametrize("problem, expected", [
    ("pickle", "holds pickled Python objects"),
    ("wrong-keys", "missing"),
    ("nan", "NaN or inf"),
    ("wrong-dim", "declares embed_dim 384"),
    ("no-dim", "must declare embed_dim"),
])
def test_bad_submissions_are_refused_with_one_line(tmp_path, tiny_fm_state, capsys, monkeypatch, problem, expected):
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    folder, card_text = tmp_path / "author", CARD
    folder.mkdir()
    if problem == "pickle":
        weights = folder / "model.pt"
        torch.save({"state": Payload()}, weights)
    else:
        bad = dict(tiny_fm_state)
        if problem == "wrong-keys":
            bad.pop("cls_token")
        if problem == "nan":
            bad["norm.weight"] = torch.full_like(tiny_fm_state["norm.weight"], float("nan"))
        if problem == "wrong-dim":
            card_text = CARD.replace("embed_dim: 192", "embed_dim: 384")
        if problem == "no-dim":
            card_text = CARD.replace("embed_dim: 192\n", "")
        weights = folder / "model.safetensors"
        save_file(bad, str(weights))
    (folder / "card.yaml").write_text(card_text)
    capsys.readouterr()
    assert submit(weights, folder / "card.yaml", tmp_path / "store") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    if problem in ("pickle", "wrong-keys"):  # the author's file is named, not the staging copy
        assert str(weights) in err[0] and "checkpoint/" not in err[0], err
    assert not marker.exists()  # the pickle's payload never ran
    assert requests_of(tmp_path / "store") == []


def queue_run(store, out, registry, cache, **kwargs):
    return subprocess.Popen([HARNESS, "queue", "run", "--requests", str(store), "--output", str(out),
                             "--include", str(registry), "--cache-dir", str(cache)],
                            env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def test_queue_scores_survives_a_kill_and_is_idempotent(tmp_path, tiny_fm_state, tiny_registry_file, monkeypatch):
    weights, card = author_files(tmp_path / "author", tiny_fm_state)
    store, out, cache = tmp_path / "store", tmp_path / "results", tmp_path / "cache"
    assert submit(weights, card, store) == 0

    # kill the queue while it scores the request
    first = queue_run(store, out, tiny_registry_file, cache)
    deadline = time.time() + 120
    while time.time() < deadline and requests_of(store)[0]["status"] != "RUNNING":
        time.sleep(0.05)
    assert requests_of(store)[0]["status"] == "RUNNING"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert all(json.loads(p.read_text()) for p in out.glob("*/*.json"))  # nothing half-written

    second = queue_run(store, out, tiny_registry_file, cache)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-2000:]
    [request] = requests_of(store)
    assert request["status"] == "FINISHED" and request["attempts"] == 2
    assert request["results"] == {"tiny-tiles": "ok"}
    assert "retrying" in stdout + stderr
    # what it scored is printed as the run's scores table, before every request's state
    scores = stdout[stdout.index("main scores"):stdout.index("requests in")]
    assert "lab/tiny-fm" in scores and "tiny-tiles" in scores and "1 ok, 0 skipped, 0 failed" in scores
    [result_file] = out.glob("*/tiny-tiles.json")
    result = json.loads(result_file.read_text())
    assert result["model"]["name"] == "lab/tiny-fm" and result["model"]["weights_sha256"] == request["weights_sha256"]
    # its embeddings were computed in the request's own folder, not the shared cache, and removed with it
    assert not (store / "embeddings" / request["id"]).exists()
    assert not list(cache.glob("embeddings/*/meta.json"))

    # again: nothing left to do, nothing rescored
    mtime = result_file.stat().st_mtime_ns
    third = queue_run(store, out, tiny_registry_file, cache)
    stdout, _ = third.communicate(timeout=120)
    assert third.returncode == 0 and result_file.stat().st_mtime_ns == mtime
    assert "main scores" not in stdout and "requests in" in stdout  # nothing scored: the requests alone
    assert requests_of(store)[0]["attempts"] == 2

    # the finished submission shows in the leaderboard app
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_RESULTS", str(out))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py"), default_timeout=60)
    app.run()
    assert list(app.dataframe[0].value["model"]) == ["lab/tiny-fm"]


def test_queue_list_prints_names_and_reasons_as_written(tmp_path, capsys):
    """A request's model name and an invalid file's reason are data: '[x](...)' or '[red]' is printed
    as it is, never read as rich markup (the name lost its '[x]', and a '[/y]' would stop the command)."""
    requests = tmp_path / "store" / "requests"
    requests.mkdir(parents=True)
    name = "[x](https://evil.example) [red]r[/red]"
    (requests / "md.json").write_text(json.dumps({
        "id": "md", "model_name": name, "tasks": "synth-tiles", "status": "PENDING", "weights_sha256": "0" * 64,
        "submitted": "2026-12-01T00:00:00Z", "updated": "2026-12-01T00:00:00Z"}))
    (requests / "[bad].json").write_text("[/y]")
    assert main(["queue", "list", "--requests", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert name in out and "[bad].json" in out


def test_a_requests_folder_that_holds_no_queue_is_said_and_a_file_is_refused(tmp_path, capsys):
    """A typo in a backend's --requests scored nothing, every cron run, without a word (an empty
    table), and a file there was listed as an empty queue; now a note names the folder, and a file
    is one line (exit 2). A queue whose requests/ folder exists says nothing more."""
    typo = tmp_path / "reqeusts"
    for action in (["list"], ["run", "--output", str(tmp_path / "out")]):
        assert main(["queue", *action, "--requests", str(typo)]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert f"note: no request was ever submitted to {typo} (no requests/ folder there)" in err
    assert not typo.exists()  # nothing was made there
    a_file = tmp_path / "requests.txt"
    a_file.write_text("")
    assert main(["queue", "run", "--requests", str(a_file), "--output", str(tmp_path / "out")]) == 2
    assert f"--requests {a_file}: not a folder" in capsys.readouterr().err
    (tmp_path / "store" / "requests").mkdir(parents=True)
    assert main(["queue", "list", "--requests", str(tmp_path / "store")]) == 0
    assert "note:" not in capsys.readouterr().err
