"""The runner's per-item samples (`harness run --log-samples`): written beside each result, named
by it, and enough to recompute the result's metrics with reference libraries item by item."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sksurv.metrics import concordance_index_censored


def _result_and_samples(folder: Path, task: str) -> tuple[dict, pd.DataFrame]:
    result = json.loads((folder / f"{task}.json").read_text())
    assert result["schema_version"] == 7 and result["samples"] == f"{task}.samples.parquet"
    return result, pd.read_parquet(folder / result["samples"])


def test_samples_recompute_every_family_metric(instrument_results):
    """From the samples alone, with sklearn and scikit-survival, each family's metric is what the
    result says: per seed, per fold or over items."""
    noise = instrument_results / "random-noise"

    result, samples = _result_and_samples(noise, "synth-tiles")
    probe = samples[samples["head"] == "probe"]
    per_seed = [balanced_accuracy_score(g["label"], g["prediction"]) for _, g in probe.groupby("seed")]
    assert np.allclose(per_seed, result["metrics"]["balanced_accuracy"]["values"], atol=1e-6)
    assert len(probe) == len(result["seeds"]) * result["n_samples"]["test"]

    result, samples = _result_and_samples(noise, "synth-retrieval")
    assert np.isclose(samples["map@5"].mean(), result["main_score"]["value"])
    assert len(samples["neighbours"].iloc[0]) >= 5

    result, samples = _result_and_samples(noise, "synth-vqa")
    per_seed = samples.groupby("seed")["exact"].mean().to_numpy()
    assert np.allclose(per_seed, result["metrics"]["overall_accuracy"]["values"], atol=1e-6)
    assert ((samples["answer"] == samples["prediction"]) == samples["exact"]).all()

    result, samples = _result_and_samples(noise, "synth-report")
    assert np.allclose(samples.groupby("seed")["cider_d"].mean(), result["metrics"]["cider_d"]["values"], atol=1e-6)

    result, samples = _result_and_samples(noise, "synth-slides")
    per_fold = [balanced_accuracy_score(g["label"], g["prediction"]) for _, g in samples.groupby("fold")]
    assert np.allclose(per_fold, result["details"]["per_fold"]["balanced_accuracy"], atol=1e-6)
    assert samples["slide"].is_unique and samples["slide"].str.endswith(".tiff").all()

    result, samples = _result_and_samples(noise, "synth-survival")
    for fold, group in samples.groupby("fold"):
        patients = group.groupby("patient").agg(event=("event", "first"), time=("time", "first"), risk=("risk", "mean"))
        c = concordance_index_censored(patients["event"].to_numpy(), patients["time"].to_numpy(), patients["risk"].to_numpy())[0]
        assert np.isclose(c, result["details"]["per_fold"]["c_index"][fold], atol=1e-9)

    result, samples = _result_and_samples(noise, "synth-invariance")
    assert np.isclose(samples.groupby("item")["cosine"].mean().mean(), result["main_score"]["value"], atol=1e-6)

    result, samples = _result_and_samples(noise, "synth-plism")
    assert len(samples) == result["n_samples"]["pairs"] and {"slide_a", "slide_b", "top_10"} <= set(samples)


def test_log_samples_recomputes_a_result_that_has_none(suite_cache, tmp_path):
    """A result written without samples is recomputed under --log-samples (not reused without
    them); once they exist, a rerun reuses both; a version 2 file (no `samples` key) still reads."""
    from harness.cli import main
    from harness.results import ResultStore

    run = ["run", "--model", "random-noise", "--tasks", "synth-retrieval", "--output", str(tmp_path),
           "--cache-dir", str(suite_cache)]
    assert main(run) == 0
    first = json.loads((tmp_path / "random-noise" / "synth-retrieval.json").read_text())
    assert first["samples"] is None and not (tmp_path / "random-noise" / "synth-retrieval.samples.parquet").exists()
    assert main([*run, "--log-samples"]) == 0
    second = json.loads((tmp_path / "random-noise" / "synth-retrieval.json").read_text())
    assert second["samples"] == "synth-retrieval.samples.parquet" and second["date"] >= first["date"]
    written = (tmp_path / "random-noise" / second["samples"]).stat().st_mtime_ns
    assert main([*run, "--log-samples"]) == 0
    assert (tmp_path / "random-noise" / second["samples"]).stat().st_mtime_ns == written  # reused

    old = {k: v for k, v in second.items() if k != "samples"} | {"schema_version": 2}
    path = tmp_path / "old" / "synth-retrieval.json"
    path.parent.mkdir()
    path.write_text(json.dumps(old))
    read = ResultStore(tmp_path).read(path)
    assert read is not None and read.samples is None and read.main_score.value == second["main_score"]["value"]


def test_a_main_score_the_data_cannot_give_fails_that_task_in_one_line(tmp_path, capsys):
    """plism_score needs pairs across scanners, stainings and both: on slides of one scanner it is
    not computed. That task fails, naming the score and what was computed; the run goes on (it
    stopped with a KeyError before)."""
    from harness.cli import main

    registry = tmp_path / "one-scanner.yaml"
    registry.write_text("""
datasets:
  one-scanner:
    source: synth
    generator: plism
    params: {tile_size: 32, n_tiles: 12, stainings: [standard, faded], scanners: [reference], seed: 0}
tasks:
  one-scanner-plism:
    family: stain_robustness
    dataset: one-scanner
    main_score: plism_score
    params: {cross_domain: false}
  one-scanner-cosine:
    family: stain_robustness
    dataset: one-scanner
    main_score: cosine_all
    params: {cross_domain: false}
""")
    code = main(["run", "--model", "random-noise", "--tasks", "one-scanner-plism,one-scanner-cosine", "--include",
                 str(registry), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 1  # one task failed
    failed = json.loads((tmp_path / "out" / "random-noise" / "one-scanner-plism.json").read_text())
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("main score 'plism_score' was not computed on this data (computed: ")
    assert "cosine_all" in failed["reason"] and "\n" not in failed["reason"]
    other = json.loads((tmp_path / "out" / "random-noise" / "one-scanner-cosine.json").read_text())
    assert other["status"] == "ok" and other["main_score"]["name"] == "cosine_all"


RERUN_PROBE = """
import sys
from harness.cli import main
code = main(sys.argv[1:])
print("exit", code, "torch" in sys.modules, "timm" in sys.modules)
"""


def test_a_rerun_that_reuses_every_result_imports_neither_torch_nor_timm(tmp_path):
    """The second run finds every result (and the data of skipped tasks still absent): it answers
    from the result files, resolving the timm name from the cached architecture list, without the
    ~5 s of importing torch and timm. The first run computes, so it imports both."""
    import os
    import subprocess
    import sys

    from tests.support.registries import TINY_REGISTRY

    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY_REGISTRY)
    argv = ["run", "--model", "timm:vit_tiny_patch16_224", "--random-init", "--tasks", "tiny", "--include",
            str(registry), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HARNESS_CACHE=str(tmp_path / "cache"))
    first, second = (subprocess.run([sys.executable, "-c", RERUN_PROBE, *argv], env=env, capture_output=True,
                                    text=True, timeout=600) for _ in range(2))
    assert first.stdout.splitlines()[-1] == "exit 0 True True", first.stderr[-2000:]
    assert second.stdout.splitlines()[-1] == "exit 0 False False", second.stderr[-2000:]
    assert "2 ok" in second.stdout


def test_a_rerun_of_a_local_checkpoint_imports_no_torch_and_reads_no_weights(tmp_path, tiny_fm_state):
    """A model author's checkpoint: finding its files imported torch (1.7 s) and its weights were
    hashed at every run (a 1B-parameter model's 4.4 GB: the rerun's whole 3 s). The second run now
    finds the files without torch and the hash in the cache, and reuses every result."""
    import os
    import subprocess
    import sys

    from tests.support.checkpoints import author_files
    from tests.support.registries import TINY_REGISTRY

    author_files(tmp_path / "ckpt", tiny_fm_state)
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY_REGISTRY)
    argv = ["run", "--model", str(tmp_path / "ckpt"), "--tasks", "tiny-retrieval", "--include", str(registry),
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HARNESS_CACHE=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, "-c", RERUN_PROBE, *argv], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.stdout.splitlines()[-1] == "exit 0 True True", first.stderr[-2000:]
    assert len(list((tmp_path / "cache" / "weights-sha256").iterdir())) == 1
    probe = RERUN_PROBE.replace("from harness.cli import main", "from harness.cli import main\n"
                                "import harness.models.weights_digest as d\n"
                                "d.sha256_file = lambda path: sys.exit('the weights were read again')")
    second = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert second.stdout.splitlines()[-1] == "exit 0 False False", second.stderr[-2000:]
    assert "1 ok" in second.stdout and "earlier result" in second.stdout


def test_a_card_edited_since_scores_the_checkpoint_again_and_one_only_described_does_not(tmp_path, tiny_fm_state,
                                                                                            tiny_registry_file, capsys):
    """A model author's card fixed after a run (pooling, an act_layer) was answered with the results of
    the model as it was ("earlier result"), and with its cached embeddings: a result now records the
    digest of what in the card decides the embeddings, and a checkpoint's cache entry its network."""
    from harness.cli import main
    from tests.support.checkpoints import CARD, author_files

    _, card = author_files(tmp_path / "ckpt", tiny_fm_state)
    argv = ["run", "--model", str(tmp_path / "ckpt"), "--tasks", "tiny-retrieval", "--include", str(tiny_registry_file),
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    result = tmp_path / "out" / "lab--tiny-fm" / "tiny-retrieval.json"

    def run(card_text: str | None) -> tuple[bool, dict, int]:
        if card_text is not None:
            card.write_text(card_text)
        assert main(argv) == 0
        said = capsys.readouterr().out
        entries = len(list((tmp_path / "cache" / "embeddings").glob("*/meta.json")))
        return "earlier result" in said, json.loads(result.read_text()), entries

    _, first, entries = run(None)
    assert len(first["model"]["card_sha256"]) == 64
    assert run(None)[0]  # nothing changed
    assert run(CARD + "notes: retrained with more data\nlicence: CC-BY-4.0\n")[0]  # describes, changes no number
    reused, pooled, more = run(CARD.replace("pooling: cls", "pooling: mean-patch"))
    assert not reused and pooled["model"]["card_sha256"] != first["model"]["card_sha256"] and more > entries
    assert pooled["main_score"]["value"] != first["main_score"]["value"]
    # a layer the weights do not show: same file, same keys and shapes, another network
    reused, relu, most = run(CARD + "timm_kwargs: {act_layer: ReLU}\n")
    assert not reused and most > more and relu["main_score"]["value"] != first["main_score"]["value"]
    reused, back, _ = run(CARD)  # the first card again: its result was replaced, its embeddings were kept
    assert not reused and back["main_score"]["value"] == first["main_score"]["value"]
    assert len(list((tmp_path / "cache" / "embeddings").glob("*/meta.json"))) == most
    # a result written before results recorded the card does not say how its model was fed
    result.write_text(result.read_text().replace(f'"card_sha256": "{first["model"]["card_sha256"]}"',
                                                 '"card_sha256": null'))
    assert not run(None)[0]
    assert run(None)[0]


def test_a_failure_reason_is_the_line_that_says_what_happened():
    from harness.runner import one_line

    cuda = RuntimeError("CUDA error: initialization error\nSearch for `cudaErrorInitializationError' in the docs\n"
                        "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n")
    assert one_line(cuda) == "CUDA error: initialization error"  # not the closing hint
    worker = ValueError("Caught HarnessError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                        "call last):\n  File \"x.py\", line 1, in f\nharness.errors.HarnessError: a.svs: unreadable")
    assert one_line(worker) == "a.svs: unreadable"  # the traceback's last line is the error
    assert one_line(KeyError()) == "KeyError"


def test_a_precision_asked_for_by_name_is_not_answered_by_a_result_at_another(tmp_path, tiny_registry_file, capsys):
    """`--precision fp32` after a bf16 run reused the bf16 results without a word (the note said only
    "earlier result"); a precision named on the command line now scores again where a result was
    embedded at another, and `auto` reuses whatever is there."""
    from harness.cli import main

    argv = ["run", "--model", "timm:vit_tiny_patch16_224", "--random-init", "--tasks", "tiny-retrieval", "--include",
            str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    result = tmp_path / "out" / "timm--vit_tiny_patch16_224-random-init" / "tiny-retrieval.json"
    for precision, reused in [("fp32", False), ("bf16", False), ("bf16", True), ("auto", True), ("fp32", False)]:
        assert main([*argv, "--precision", precision]) == 0
        said = capsys.readouterr().out
        assert ("earlier result" in said) is reused, (precision, said)
        recorded = json.loads(result.read_text())["timings"]["precision"]
        assert recorded == ("bf16" if precision == "auto" else precision)
    text = result.read_text()
    for hand_edited in ("1e30", "NaN", "[1]"):  # not a precision: the file is said, scored again and replaced
        result.write_text(text.replace('"precision": "fp32"', f'"precision": {hand_edited}'))
        assert main([*argv, "--precision", "fp32"]) == 0
        said = " ".join(capsys.readouterr().err.split())
        assert f"note: {result}: not a result file this harness can read" in said
        assert json.loads(result.read_text())["timings"]["precision"] == "fp32"



def test_a_run_without_extraction_options_embeds_as_harness_run_does(tmp_path):
    """`distill --score` built its run without extraction options and was scored with the bare
    `ExtractOptions()` (the CPU in fp32, no workers) whatever the machine: the runner's default is now
    what `harness run` resolves without flags."""
    from harness.registry import load_registry
    from harness.runner import RunConfig, Runner
    from harness.sources import DataContext
    from harness.tasks import FAMILIES
    from harness.tile_embedding import default_extract_options, resolve_device

    config = RunConfig(models=["random-noise"], tasks=[], output=tmp_path / "out",
                       context=DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))
    assert Runner(load_registry(None, FAMILIES), FAMILIES, config).extract == default_extract_options(resolve_device("auto"))
