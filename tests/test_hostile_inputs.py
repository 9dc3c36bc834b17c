"""Hostile inputs, one row each: what the user gives, the exit code, and the one line that says
what is wrong. A new refusal is a new row of REFUSALS.

Exit codes: 2 = usage or configuration error (nothing ran), 1 = a task failed (the others ran).
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness.cli import main
from tests.support.registries import TINY_REGISTRY

TINY_ARCH_CARD = "architecture: vit_tiny_patch16_224\npooling: cls\nembed_dim: 192\n"


def checkpoint(folder: Path, card: str | bytes, state: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state or {"x": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / "card.yaml").write_bytes(card if isinstance(card, bytes) else card.encode())
    return folder


def registry(folder: Path, text: str | bytes, name="extra.yaml") -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


TILING_TASK = """
datasets:
  cohort:
    source: wsi
    path: cohort/slides.csv
    label_column: label
    classes: [a, b]
    tiling: {{{tiling}}}
tasks:
  cohort-task:
    family: slide_classification
    dataset: cohort
    main_score: balanced_accuracy
"""

DUPLICATED = """datasets:
  tiny-tiles:
    source: synth
    generator: tiles
tasks:
  twice:
    family: tile_classification
    dataset: tiny-tiles
    main_score: balanced_accuracy
  twice:
    family: retrieval
    dataset: tiny-tiles
    main_score: map@5
"""


def rows(tmp: Path):
    """(id, argv, exit code, text the single stderr line must hold)."""
    yield ("bad timm_kwargs (unknown key)", ["run", "--model", str(checkpoint(tmp / "kw", TINY_ARCH_CARD
                                                                          + "timm_kwargs: {no_such_kwarg: 3}\n"))],
           2, "model card key 'timm_kwargs': 'no_such_kwarg' is not an architecture setting")
    yield ("bad timm_kwargs (wrong type)", ["run", "--model", str(checkpoint(tmp / "kw2", TINY_ARCH_CARD
                                                                          + "timm_kwargs: {depth: twelve}\n"))],
           1, "with timm_kwargs {'depth': 'twelve'}")
    yield ("submit with bad timm_kwargs", ["submit", str(checkpoint(tmp / "kw3", TINY_ARCH_CARD
                                                                   + "timm_kwargs: {depth: twelve}\n")),
                                           "--card", str(tmp / "kw3" / "card.yaml"), "--requests", str(tmp / "q")],
           2, "fix timm_kwargs in the model card")
    yield ("binary --include", ["list", "--include", str(registry(tmp, b"\xff\xfe\x00bin\x9c"))],
           2, "is not UTF-8 text")
    yield ("binary card.yaml", ["run", "--model", str(checkpoint(tmp / "bin", b"\x89PNG\r\n\x1a\n\xff"))],
           2, "model card is not UTF-8 text")
    yield ("a task defined twice in one file", ["list", "--include", str(registry(tmp, DUPLICATED, "dup.yaml"))],
           2, "line 10, column 3: key 'twice' appears twice (lines 6 and 10)")
    for key, value in (("tile_size", 0), ("target_mpp", -1), ("min_tissue", 2.0)):
        yield (f"tiling {key}: {value}",
               ["list", "--include", str(registry(tmp, TILING_TASK.format(tiling=f"{key}: {value}"), f"{key}.yaml"))],
               2, f"key 'tiling.{key}'")
    # a family's parameters are bounded when the registry is read (they were scored, or failed after embedding)
    for family, dataset, score, params, text in (
            ("vqa", "synth-vqa", "overall_accuracy", "{epochs: -1}", "key 'params.epochs': Input should be greater"),
            ("vqa", "synth-vqa", "overall_accuracy", "{lr: .inf}", "key 'params.lr': Input should be a finite number"),
            ("vqa", "synth-vqa", "overall_accuracy", "{dropout: 2}", "key 'params.dropout': Input should be less than 1"),
            ("tile_classification", "synth-tiles", "balanced_accuracy", "{seeds: []}", "key 'params.seeds': List should"),
            ("tile_classification", "synth-tiles", "balanced_accuracy", "{knn_k: [0]}", "key 'params.knn_k.0'"),
            ("report_generation", "synth-reports", "cider_d", "{d_model: 10, heads: 4}",
             "d_model 10 is not a multiple of heads 4"),
            ("survival", "synth-slides", "c_index", "{abmil: {lr: .nan}}", "key 'params.abmil.lr': Input should be a finite"),
            ("retrieval", "synth-tiles", "map@5", "{bootstrap_resamples: 0}", "key 'params.bootstrap_resamples'")):
        task = (f"tasks:\n  bounded:\n    family: {family}\n    dataset: {dataset}\n    main_score: {score}\n"
                f"    params: {params}\n")
        yield (f"{family} params {params}", ["list", "--include", str(registry(tmp, task, f"p{abs(hash(params))}.yaml"))],
               2, text)
    yield ("a misspelt model name", ["run", "--model", "synth-orcale"], 2,
           "unknown model 'synth-orcale' (did you mean 'synth-oracle'?)")
    yield ("unknown timm architecture", ["run", "--model", "timm:no_such_net"], 2, "timm has no architecture 'no_such_net'")
    (tmp / "empty").mkdir()
    yield ("empty checkpoint folder", ["run", "--model", str(tmp / "empty")], 2, "no weights file")
    yield ("empty model spec", ["run", "--model", ""], 2, "empty model spec")
    # 'hf-hub:' matched a known card without a hub id and scored colour-stats under that name
    yield ("empty hub id", ["run", "--model", "hf-hub:"], 2, "model 'hf-hub:': not a Hub model id: give hf-hub:ORG/MODEL")
    yield ("hub id of three parts", ["run", "--model", "hf-hub:a/b/c"], 2, "model 'hf-hub:a/b/c': not a Hub model id")
    import timm

    weights = {k: v.contiguous() for k, v in timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict().items()}
    yield ("submit an unknown task", ["submit", str(checkpoint(tmp / "ok", TINY_ARCH_CARD, weights)), "--card",
                                      str(tmp / "ok" / "card.yaml"), "--tasks", "no-such-task", "--requests",
                                      str(tmp / "q")], 2, "no-such-task")
    quantised = {k: v.to(torch.int8) for k, v in weights.items()}  # load_state_dict would cast them silently
    yield ("int8 weights of a float architecture", ["run", "--model", str(checkpoint(tmp / "int8", TINY_ARCH_CARD,
                                                                                  quantised))],
           1, "150 of 150 tensors hold another kind of number than 'vit_tiny_patch16_224' has (e.g. cls_token is int8")
    yield ("submit int8 weights", ["submit", str(tmp / "int8"), "--card", str(tmp / "int8" / "card.yaml"),
                                   "--requests", str(tmp / "q")], 2, "save the float weights before quantising")
    blank = {k: torch.zeros_like(v) if k.startswith("norm.") else v for k, v in weights.items()}  # output = bias 0
    yield ("a model that gives every image one embedding", ["run", "--model", str(checkpoint(
        tmp / "blank", TINY_ARCH_CARD, blank))], 1, "gives the same embedding to all 36 images of tiny-tiles/train")
    # cards are bounded before anything is built (#26)
    yield ("timm_kwargs naming a file", ["run", "--model", str(checkpoint(tmp / "path", TINY_ARCH_CARD + (
        "timm_kwargs: {checkpoint_path: /etc/hostname}\n")))], 2, "'checkpoint_path' is not an architecture setting")
    yield ("timm_kwargs pretrained_cfg_overlay", ["run", "--model", str(checkpoint(tmp / "overlay", TINY_ARCH_CARD + (
        "timm_kwargs: {pretrained_cfg_overlay: {file: /etc/passwd}}\n")))], 2, "'pretrained_cfg_overlay' is not")
    yield ("a layer that is not a layer class", ["run", "--model", str(checkpoint(tmp / "layer", TINY_ARCH_CARD + (
        "timm_kwargs: {act_layer: create_model}\n")))], 1, "unknown layer 'create_model'")
    yield ("a 10.9B-parameter card", ["run", "--model", str(checkpoint(tmp / "huge", TINY_ARCH_CARD.replace(
        "192", "4096") + "timm_kwargs: {embed_dim: 4096, depth: 48, num_heads: 32}\n"))], 1,
        "above the budget of 2.5B")
    yield ("a card that would allocate 120 GB", ["run", "--model", str(checkpoint(tmp / "wide", TINY_ARCH_CARD.replace(
        "192", "50000") + "timm_kwargs: {embed_dim: 50000, depth: 12, num_heads: 1}\n"))], 1, "above the budget")
    yield ("input_size 100000", ["run", "--model", str(checkpoint(tmp / "px", TINY_ARCH_CARD + "input_size: 100000\n"))],
           2, "key 'input_size'")
    yield ("std of zero", ["run", "--model", str(checkpoint(tmp / "std", TINY_ARCH_CARD + "std: [0, 0, 0]\n"))],
           2, "key 'std'")
    yield ("a card named '..'", ["run", "--model", str(checkpoint(tmp / "dots", TINY_ARCH_CARD + "name: '..'\n"))],
           2, "model card key 'name'")
    yield ("a card named as a built-in model", ["run", "--model", str(checkpoint(
        tmp / "noise", TINY_ARCH_CARD + "name: random-noise\n"))], 2, "'random-noise' is the name of a built-in model")
    yield ("a card named as the default model", ["run", "--model", str(checkpoint(
        tmp / "default", TINY_ARCH_CARD + "name: 'timm:vit_tiny_patch16_224'\n"))], 2, "the name of a built-in model")
    yield ("a card setting the zoo's local_kwargs", ["run", "--model", str(checkpoint(
        tmp / "zoo", TINY_ARCH_CARD + "local_kwargs: {checkpoint_path: /etc/hostname}\n"))], 2, "known models only")
    big = checkpoint(tmp / "bigcard", TINY_ARCH_CARD + "notes: '" + "x" * 100_000 + "'\n")
    yield "a 100 kB card", ["run", "--model", str(big)], 2, "a model card of 100,"
    (tmp / "out-file").write_text("not a folder")
    yield ("--output is a file", ["run", "--model", "random-noise", "--output-override", str(tmp / "out-file")], 2,
           "cannot write results there")
    # distill: both were tracebacks, the second after training (NotADirectoryError)
    yield ("distill --output is a file", ["distill", "--teacher", "synth-reference", "--set", "steps=2", "--output",
                                          str(tmp / "out-file")], 2, "cannot write the student there")
    yield ("distill --results is a file", ["distill", "--teacher", "synth-reference", "--set", "steps=2", "--output",
                                           str(tmp / "student"), "--score", "synth-tiles", "--results",
                                           str(tmp / "out-file")], 2, "cannot write results there")
    yield ("pull --output is a file", ["pull", "--repo", "lab/results", "--output", str(tmp / "out-file")], 2,
           "--output " + str(tmp / "out-file") + ": cannot write results there")  # was a traceback after the download
    yield ("submit --requests is a file", ["submit", str(tmp / "ok"), "--card", str(tmp / "ok" / "card.yaml"),
                                           "--requests", str(tmp / "out-file")], 2, "cannot keep the queue there")


def test_each_refusal_is_one_line_with_its_exit_code(tmp_path, capsys, cache_dir):
    failures = []
    for name, argv, code, text in rows(tmp_path):
        capsys.readouterr()
        output = argv[argv.index("--output-override") + 1] if "--output-override" in argv else str(tmp_path / "out")
        argv = argv[:argv.index("--output-override")] if "--output-override" in argv else argv
        extra = ["--tasks", "tiny-tiles", "--include", str(registry(tmp_path, TINY_REGISTRY, "tiny.yaml")),
                 "--output", output, "--cache-dir", str(cache_dir)] if argv[0] == "run" else []
        try:
            got = main(argv + extra)
        except Exception as error:  # noqa: BLE001 - a traceback is a failed row, the other rows still run
            got = f"{type(error).__name__} raised"
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        lines = [line for line in err if line.startswith(("error:", "failed"))] or err
        if got != code or len(lines) != 1 or text not in lines[0]:
            failures.append(f"{name}: exit {got} (want {code}), stderr {err}")
    assert not failures, "\n".join(failures)


def test_a_model_that_cannot_be_built_is_one_failure_and_the_run_goes_on(tmp_path, cache_dir, capsys):
    bad = checkpoint(tmp_path / "bad", TINY_ARCH_CARD + "timm_kwargs: {depth: twelve}\n")
    out = tmp_path / "out"
    code = main(["run", "--model", str(bad), "--model", "random-noise", "--tasks", "tiny-tiles", "--include",
                 str(registry(tmp_path, TINY_REGISTRY)), "--output", str(out), "--cache-dir", str(cache_dir)])
    assert code == 1
    assert json.loads((out / "random-noise" / "tiny-tiles.json").read_text())["status"] == "ok"
    assert "Traceback" not in capsys.readouterr().err


def test_markup_in_a_name_or_reason_is_printed_as_written(tmp_path, cache_dir, capsys):
    """A card named '[/red]lab [b]fm' (rich markup: an unmatched closing tag raised MarkupError at the
    end of the run) and a reason holding '[text]' print as they are written."""
    import timm

    state = {k: v.contiguous() for k, v in timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict().items()}
    tiny = checkpoint(tmp_path / "markup", TINY_ARCH_CARD + "name: '[/red]lab [b]fm'\n", state)
    code = main(["run", "--model", str(tiny), "--tasks", "tiny-tiles", "--include", str(registry(tmp_path, TINY_REGISTRY)),
                 "--output", str(tmp_path / "out"), "--cache-dir", str(cache_dir)])
    assert code == 0
    assert "[/red]lab [b]fm" in " ".join(capsys.readouterr().out.split())

    from harness.run_summary import print_summary
    from harness.runner import TaskOutcome

    print_summary([TaskOutcome("m", "t", "skipped", reason="pip install 'pathology-harness[text]'")], tmp_path)
    assert "pathology-harness[text]" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value, text", [
    ("--batch-size", "0", "--batch-size: 0: give 1 to 16384"), ("--batch-size", "-1", "give 1 to 16384"),
    ("--batch-size", "1000000000", "give 1 to 16384"),  # one batch held a whole dataset's tiles in memory
    ("--workers", "-1", "--workers: -1: give 0 to 64"), ("--nproc", "0", "--nproc: 0: give 1 to 64"),
    ("--nproc", "100000", "--nproc: 100000: give 1 to 64"),  # torchrun started that many processes
    ("--max-parameters", "lots", "is not a parameter count"),
    ("--port", "99999", "--port: 99999: give 1 to 65535"),  # was Streamlit's OverflowError traceback
])
def test_bad_numbers_are_usage_errors(capsys, flag, value, text):
    with pytest.raises(SystemExit) as exit_:
        main(["leaderboard", flag, value] if flag == "--port" else ["run", "--model", "random-noise", flag, value])
    assert exit_.value.code == 2 and text in capsys.readouterr().err


def test_a_model_over_the_budget_is_one_failure_and_the_others_are_scored(tmp_path, cache_dir, capsys):
    huge = checkpoint(tmp_path / "huge", TINY_ARCH_CARD.replace("192", "4096")
                      + "timm_kwargs: {embed_dim: 4096, depth: 48, num_heads: 32}\n")
    out = tmp_path / "out"
    code = main(["run", "--model", str(huge), "--model", "random-noise", "--tasks", "tiny-tiles", "--include",
                 str(registry(tmp_path, TINY_REGISTRY)), "--output", str(out), "--cache-dir", str(cache_dir)])
    assert code == 1
    assert json.loads((out / "random-noise" / "tiny-tiles.json").read_text())["status"] == "ok"
    err = capsys.readouterr().err
    assert "Traceback" not in err and "above the budget" in err
    # --max-parameters sets the budget: at 1 parameter even the tiny ViT is refused (the flag reaches the check)
    small = checkpoint(tmp_path / "small", TINY_ARCH_CARD)
    assert main(["run", "--model", str(small), "--tasks", "tiny-tiles", "--max-parameters", "1", "--include",
                 str(registry(tmp_path, TINY_REGISTRY)), "--output", str(out), "--cache-dir", str(cache_dir)]) == 1
    assert "5.5M parameters (0.0 GB in fp32), above the budget of 1;" in capsys.readouterr().err


def test_a_full_disk_fails_generation_in_one_line_and_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from harness.errors import HarnessError
    from harness.synth.tile_suite import SyntheticTileParams, build_tile_suite

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(HarnessError) as error:
        build_tile_suite(tmp_path / "tiles", SyntheticTileParams(tile_size=64, per_class={"train": 4}, seed=1))
    assert "needs about" in str(error.value) and "GB are free there" in str(error.value)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


DYING_WORKER = """
import os, signal, sys
from pathlib import Path
from harness.errors import HarnessError
from harness.synth.suite_writer import build_atomically

def render(folder, job):
    if job == 3:
        os.kill(os.getpid(), signal.SIGBUS)  # what a worker gets writing a memory-mapped page on a full disk
    return 1

try:
    build_atomically(Path(sys.argv[1]) / "suite", lambda folder: None, render, list(range(8)), 8, {}, workers=2)
except HarnessError as error:
    print("refused:", error)
"""


def test_a_generation_worker_that_dies_ends_the_run_in_one_line_not_a_hang(tmp_path):
    done = subprocess.run([sys.executable, "-c", DYING_WORKER, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)  # multiprocessing.Pool waited here for ever
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "a generation worker died" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.lock"]  # the temporary folder is gone


def test_a_failed_rerun_never_replaces_an_ok_result(tmp_path, cache_dir, capsys, monkeypatch):
    args = ["run", "--model", "random-noise", "--tasks", "tiny-tiles", "--include",
            str(registry(tmp_path, TINY_REGISTRY)), "--output", str(tmp_path / "out"), "--cache-dir", str(cache_dir)]
    assert main(args) == 0
    path = tmp_path / "out" / "random-noise" / "tiny-tiles.json"
    before = path.read_bytes()
    from harness.tasks.tile_classification import TileClassification

    def broken(self, data, params):
        raise RuntimeError("the probe ran out of memory")

    monkeypatch.setattr(TileClassification, "evaluate", broken)
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 1
    assert path.read_bytes() == before  # the earlier ok result is kept
    captured = capsys.readouterr()
    assert "kept the earlier ok result" in captured.out + captured.err
    # and the file is as readable as any other the user writes (0666 less the umask), not owner-only
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()


def test_an_undefined_main_score_is_a_failure_not_an_ok_result(tmp_path, cache_dir, capsys, monkeypatch):
    """A main score of NaN (an AUROC on a test split of one class) was written 'ok', a result the
    board could only list as invalid."""
    from harness.tasks.tile_classification import TileClassification

    evaluate = TileClassification.evaluate

    def undefined(self, data, params):
        evaluation = evaluate(self, data, params)
        evaluation.metrics["balanced_accuracy"].mean = float("nan")
        return evaluation

    monkeypatch.setattr(TileClassification, "evaluate", undefined)
    assert main(["run", "--model", "random-noise", "--tasks", "tiny-tiles", "--include",
                 str(registry(tmp_path, TINY_REGISTRY)), "--output", str(tmp_path / "out"),
                 "--cache-dir", str(cache_dir)]) == 1
    written = json.loads((tmp_path / "out" / "random-noise" / "tiny-tiles.json").read_text())
    assert written["status"] == "failed"
    assert written["reason"].startswith("main score 'balanced_accuracy' is undefined on this data (nan")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


SURVIVAL = """
datasets:
  cohort:
    source: wsi
    path: cohort/slides.csv
    time_column: time
    event_column: event
tasks:
  cohort-survival:
    family: survival
    dataset: cohort
    main_score: c_index
"""


@pytest.mark.parametrize("row, expected", [
    ("s2.tiff,p2,12.5", "line 3, column 'event': empty is not 0 or 1"),
    ("s2.tiff,p2,nan,1", "line 3, column 'time': 'nan' is not a time >= 0"),
    ("s2.tiff,p2,3.0,yes", "line 3, column 'event': 'yes' is not 0 or 1"),
    ("s2.tiff,,3.0,1", "line 3 has an empty 'patient'"),  # was one patient named '' for every such slide
    ("s2.tiff", "line 3 has fewer fields than the header (no 'patient')"),
])
def test_a_bad_survival_table_names_the_csv_line_and_column(tmp_path, cache_dir, row, expected):
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    (tmp_path / "cohort").mkdir()
    csv = tmp_path / "cohort" / "slides.csv"
    csv.write_text(f"slide,patient,time,event\ns1.tiff,p1,10.0,1\n{row}\n")
    reg = load_registry([registry(tmp_path, SURVIVAL)])
    source = open_source("cohort", reg.datasets["cohort"], DataContext(cache_dir=cache_dir, data_root=tmp_path),
                         reg.datasets)
    from harness.errors import HarnessError

    with pytest.raises(HarnessError) as error:
        source.table()
    assert str(csv) in str(error.value) and expected in str(error.value)


def test_download_refused_by_the_hub_is_one_line(tmp_path):
    from tests.support.hub_standin import HubStandIn, Repo
    from tests.support.hub_cli import harness, hub_env

    spec = registry(tmp_path, """
datasets:
  gated:
    source: hf
    hub_id: lab/gated-tiles
    revision: main
    data_files: {train: train.parquet}
    image_column: image
    label_column: label
    classes: [a, b]
""")
    with HubStandIn(token="hf_right") as hub:
        hub.repos[("dataset", "lab/gated-tiles")] = Repo("dataset", private=True)
        done = harness(hub_env(hub, tmp_path, token="hf_wrong"), "download", "gated", "--include", str(spec),
                       "--cache-dir", str(tmp_path / "cache"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "HTTP 401" in lines[0] and "HF_TOKEN" in lines[0]


def test_a_data_files_pattern_matching_no_file_is_named_not_downloaded_for_ever(tmp_path, monkeypatch):
    """A typo in data_files ('trn' for 'train'): the download fetched nothing and said 'downloaded',
    and the run kept saying 'not in the local Hub cache: get it with harness download'."""
    from tests.support.hub_standin import HubStandIn, Repo
    from tests.support.hub_cli import harness, hub_env

    spec = registry(tmp_path, """
datasets:
  typo:
    source: hf
    hub_id: lab/tiles
    revision: main
    data_files: {train: "data/trn-*.parquet", test: "data/test-*.parquet"}
    classes: [a, b]
tasks:
  typo-tiles:
    family: tile_classification
    dataset: typo
    main_score: balanced_accuracy
""")
    with HubStandIn(token="hf_right") as hub:
        repo = Repo("dataset", private=False)
        repo.files = {"data/train-00000-of-00001.parquet": b"PAR1", "data/test-00000-of-00001.parquet": b"PAR1"}
        repo.commits.append("c" * 40)
        repo.snapshots["c" * 40] = dict(repo.files)
        hub.repos[("dataset", "lab/tiles")] = repo
        env = hub_env(hub, tmp_path, token="hf_right")
        done = harness(env, "download", "typo", "--include", str(spec), "--cache-dir", str(tmp_path / "cache"))
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # after the Hub's progress
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
        assert "no file of lab/tiles@main matches data_files train='data/trn-*.parquet'; fix the pattern" in lines[0]
        env["HF_HUB_OFFLINE"] = "1"  # the run finds the copy the download left: the test split, no train file
        ran = harness(env, "list", "--include", str(spec), "--cache-dir", str(tmp_path / "cache"))
    assert "absent" in ran.stdout and ran.returncode == 0
    import huggingface_hub.constants

    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    reg = load_registry([spec])
    reason = open_source("typo", reg.datasets["typo"], DataContext(tmp_path / "cache", tmp_path)).availability().reason
    assert reason.startswith("no file of the local copy of lab/tiles@main matches data_files "
                             "train='data/trn-*.parquet' (it holds data/test-00000-of-00001.parquet)"), reason


def test_two_concurrent_runs_embed_each_slide_once(tmp_path):
    """The slide path takes the cache's lock as the tile path does: the second run waits, then finds
    every slide cached and embeds none."""
    from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite

    from tests.support.registries import SLIDE_REGISTRY as REGISTRY

    build_slide_suite(tmp_path / "cohort", SyntheticSlideParams(n_patients=4, second_slide_fraction=0.0, seed=5),
                      workers=1)
    quick = "{folds: 2, abmil: {epochs: 1}, probe_max_steps: 50, bootstrap_resamples: 20}"
    spec = registry(tmp_path, REGISTRY.replace(REGISTRY[REGISTRY.index("{folds"):].strip(), quick))
    harness = str(Path(sys.executable).parent / "harness")
    runs = [subprocess.Popen([harness, "run", "--model", "timm:vit_tiny_patch16_224", "--random-init", "--tasks",
                              "cohort-grade", "--include", str(spec), "--data-root", str(tmp_path), "--cache-dir",
                              str(tmp_path / "cache"), "--output", str(tmp_path / f"out{i}"), "--workers", "0"],
                             env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    assert sum("embedding cohort" in log for log in logs) == 1, logs  # one run embedded, the other waited
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "embeddings").glob("*/meta.json")]
    assert len(metas) == 4


def test_a_model_blind_to_its_input_is_refused_again_from_the_cache(tmp_path, capsys):
    import timm

    cache_dir = tmp_path / "cache"  # its own: the refusal rows above cache the same blank model's embeddings

    weights = timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict()
    blank = checkpoint(tmp_path / "blank", TINY_ARCH_CARD,
                       {k: (torch.zeros_like(v) if k.startswith("norm.") else v).contiguous() for k, v in weights.items()})
    argv = ["run", "--model", str(blank), "--model", "random-noise", "--tasks", "tiny-tiles", "--include",
            str(registry(tmp_path, TINY_REGISTRY)), "--output", str(tmp_path / "out"), "--cache-dir", str(cache_dir)]
    for attempt in range(2):
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("gives the same embedding to all 36 images of tiny-tiles/train") == 1, err
        assert ("embedding tiny-tiles/train with " + str(blank) in err) == (attempt == 0), err  # cached the 2nd time
    scored = json.loads(next((tmp_path / "out").glob("random-noise/tiny-tiles*.json")).read_text())
    assert scored["status"] == "ok"


def test_sharded_weights_score_as_the_merged_file_and_a_bad_index_is_one_line(tmp_path, cache_dir, capsys):
    """A model saved by huggingface_hub's save_torch_state_dict over several shards with their index
    (every model above ~1.2B parameters in float32 at its default 5 GB per shard, inside the default
    --max-parameters) was refused with a merge command; it now scores as the one file would, and
    is reused on a rerun. The index is untrusted: a path, an absent shard, shards of another save,
    or shards without an index are each refused in one line naming the file, nothing scored, and the
    last (found before the run starts) keeps its merge command, which works as written."""
    import re
    import shlex

    import timm
    from huggingface_hub import save_torch_state_dict

    torch.manual_seed(0)
    small = "timm_kwargs: {img_size: 64}\ninput_size: 64\n"  # vit_tiny at 64 px: the weights are what is tested
    weights = {k: v.contiguous() for k, v in
               timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=64).state_dict().items()}
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_torch_state_dict(weights, sharded, max_shard_size="8MB")
    (sharded / "card.yaml").write_text(TINY_ARCH_CARD + small + "name: sharded\n")
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) == 3, shards

    def run(model: Path, output: str) -> int:
        capsys.readouterr()
        return main(["run", "--model", str(model), "--tasks", "tiny-tiles", "--include",
                     str(registry(tmp_path, TINY_REGISTRY)), "--output", str(tmp_path / output), "--cache-dir",
                     str(cache_dir)])

    assert run(sharded, "out") == 0
    scored = json.loads((tmp_path / "out" / "sharded" / "tiny-tiles.json").read_text())
    assert scored["status"] == "ok"
    assert run(index_path, "out") == 0 and "earlier result" in capsys.readouterr().out  # the index named: the same model

    key = next(iter(index["weight_map"]))
    elsewhere = shards[-1] if index["weight_map"][key] != shards[-1] else shards[0]
    for name, target, expected in (
        ("climb", "../sharded/model.safetensors", f"'weight_map' maps '{key}' to '../sharded/model.safetensors'"),
        ("absent", "model-00009-of-00009.safetensors",
         "the index names 1 shard(s) that are not beside it (e.g. model-00009-of-00009.safetensors)"),
        ("moved", elsewhere, f"{index['weight_map'][key]} does not hold the tensors the index assigns it (1 not in "
                             f"the index (e.g. {key}))"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        for shard in shards:
            (folder / shard).write_bytes((sharded / shard).read_bytes())
        (folder / "card.yaml").write_text(TINY_ARCH_CARD + small + f"name: {name}\n")
        (folder / index_path.name).write_text(json.dumps({"weight_map": {**index["weight_map"], key: target}}))
        assert run(folder, name) == 1  # the model fails, as one whose single file is corrupt: other models go on
        err = capsys.readouterr().err
        assert err.count(expected) == 1 and str(folder / index_path.name) in err, err
        assert "Traceback" not in err and not list((tmp_path / name).glob("*/tiny-tiles.json")), err

    assert run(sharded / shards[0], "out") == 2  # one shard named: refused before the run, not scored as missing keys
    assert f"{sharded / shards[0]}: one shard of 3; give the folder" in capsys.readouterr().err

    index_path.unlink()  # shards alone: which tensor each holds is not known
    assert run(sharded, "out") == 2
    line = capsys.readouterr().err.strip()
    assert "the weights are split over 3 files (model-00001-of-00003.safetensors, ...) and no model.safetensors.index.json" \
        in line, line
    command = re.search(r"merge them into one file: (python -c \".*\")$", line).group(1)
    subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=sharded, check=True)  # the advice, as written
    assert run(sharded, "merged") == 0  # the one file: scored as the shards were, bit for bit
    merged = json.loads((tmp_path / "merged" / "sharded" / "tiny-tiles.json").read_text())
    assert merged["metrics"] == scored["metrics"] and merged["model"]["weights_sha256"] != scored["model"]["weights_sha256"]
