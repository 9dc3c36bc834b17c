"""HEST-Bench's on-disk layout, written with h5py and anndata as the `MahmoodLab/hest-bench` dataset
lays it out, read through the `hest` source and scored end to end by the gene-expression family."""

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

h5py = pytest.importorskip("h5py", reason="the hest extra: pip install 'pathology-harness[hest]'")


def write_h5ad(path: Path, matrix, obs: list[str], var: list[str], layout: str) -> None:
    """An .h5ad file as anndata (>= 0.8) writes one: X dense (`layout` "dense"), or a csr_matrix or
    csc_matrix group ("csr", "csc"; `matrix` may be a scipy sparse matrix, written as it is), obs
    and var as dataframe groups whose `_index` attribute names their string index."""
    import scipy.sparse

    with h5py.File(path, "w") as h5:
        h5.attrs["encoding-type"], h5.attrs["encoding-version"] = "anndata", "0.1.0"
        if layout == "dense":
            h5["X"] = matrix
        else:
            sparse = matrix if scipy.sparse.issparse(matrix) else (
                scipy.sparse.csr_matrix(matrix) if layout == "csr" else scipy.sparse.csc_matrix(matrix))
            x = h5.create_group("X")
            x.attrs["encoding-type"], x.attrs["encoding-version"] = f"{layout}_matrix", "0.1.0"
            x.attrs["shape"] = np.array(matrix.shape)
            x["data"], x["indices"], x["indptr"] = sparse.data, sparse.indices, sparse.indptr
        for name, index in (("obs", obs), ("var", var)):
            frame = h5.create_group(name)
            frame.attrs["encoding-type"], frame.attrs["encoding-version"] = "dataframe", "0.2.0"
            frame.attrs["_index"] = "_index"
            frame.attrs["column-order"] = np.array([], dtype=h5py.string_dtype())
            strings = frame.create_dataset("_index", data=np.array(index, dtype=object), dtype=h5py.string_dtype())
            strings.attrs["encoding-type"], strings.attrs["encoding-version"] = "string-array", "0.2.0"

GENES = [f"GENE{i}" for i in range(12)]
SAMPLES = {"TENX95": 0, "TENX99": 0, "NCBI783": 1, "NCBI785": 1}  # sample -> the fold that tests it
LAYOUTS = {"TENX99": "dense", "NCBI785": "csc"}  # the others' X: csr


def write_task(root: Path, n_spots: int = 15) -> Path:
    """<root>/IDC in HEST-Bench's layout: brighter patches carry more GENE0..GENE5 (so an encoder that
    sees colour can predict them); the .h5ad rows are in another order, with one spot more; X is
    dense in one sample, CSC in another, CSR in the others."""
    task = root / "IDC"
    for folder in ("splits", "patches", "adata"):
        (task / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for sample in SAMPLES:
        brightness = rng.uniform(0, 1, n_spots)
        images = (np.clip(brightness[:, None, None, None] * 200 + rng.normal(0, 10, (n_spots, 48, 48, 3)), 0, 255)
                  .astype(np.uint8))
        barcodes = [f"{sample}-{i:03d}-1".encode() for i in range(n_spots)]
        with h5py.File(task / "patches" / f"{sample}.h5", "w") as h5:
            h5["img"] = images
            h5["barcode"] = np.array(barcodes).reshape(-1, 1)
            h5["coords"] = rng.integers(0, 5000, (n_spots, 2))
        rate = np.exp(0.5 + np.outer(brightness, np.r_[np.full(6, 2.0), np.zeros(6)]))
        counts = rng.poisson(rate).astype(np.float32)
        extra = rng.poisson(2.0, (1, len(GENES))).astype(np.float32)
        order = rng.permutation(n_spots)
        matrix = np.vstack([counts[order], extra])
        names = GENES
        if sample == "NCBI785":  # a gene only one sample measures is left out (the samples' common genes)
            matrix, names = np.hstack([matrix, np.ones((len(matrix), 1), np.float32)]), GENES + ["ONLY_HERE"]
        write_h5ad(task / "adata" / f"{sample}.h5ad", matrix, [barcodes[i].decode() for i in order]
                   + [f"{sample}-extra-1"], names, LAYOUTS.get(sample, "csr"))
    for fold in (0, 1):
        for kind, members in (("train", [s for s, f in SAMPLES.items() if f != fold]),
                              ("test", [s for s, f in SAMPLES.items() if f == fold])):
            rows = "".join(f"{s},patches/{s}.h5,adata/{s}.h5ad\n" for s in members)
            (task / "splits" / f"{kind}_{fold}.csv").write_text("sample_id,patches_path,expr_path\n" + rows)
    (task / "var_50genes.json").write_text(json.dumps({"genes": GENES[:8]}))
    return task


REGISTRY = """
datasets:
  hest-idc-fixture:
    source: hest
    path: hest-bench/IDC
tasks:
  hest-idc-fixture:
    family: gene_expression
    dataset: hest-idc-fixture
    main_score: pearson
    params: {gene_selection: given, genes: 8, pca: null, bootstrap_resamples: 20}
"""


def test_a_hest_task_folder_is_read_and_scored(tmp_path, cache_dir):
    write_task(tmp_path / "data" / "hest-bench")
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    out = tmp_path / "out"
    assert main(["run", "--model", "colour-stats", "--tasks", "hest-idc-fixture", "--include", str(spec),
                 "--data-root", str(tmp_path / "data"), "--output", str(out), "--cache-dir", str(cache_dir)]) == 0
    result = json.loads((out / "colour-stats" / "hest-idc-fixture.json").read_text())
    assert result["status"] == "ok" and result["n_samples"] == {"spots": 60, "patients": 4, "folds": 2}
    assert sorted(result["details"]["per_gene_pearson"]) == sorted(GENES[:8])  # the shipped list, in the order given
    per_gene = result["details"]["per_gene_pearson"]
    assert np.mean([per_gene[g] for g in GENES[:6]]) > 0.5 > np.mean([per_gene[g] for g in GENES[6:8]])


def test_the_source_keeps_barcodes_folds_and_paths_straight(tmp_path, cache_dir):
    from harness.errors import HarnessError
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    task = write_task(tmp_path / "hest-bench")
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    registry = load_registry([spec])
    source = open_source("hest-idc-fixture", registry.datasets["hest-idc-fixture"],
                         DataContext(cache_dir=cache_dir, data_root=tmp_path))
    table = source.spots("all")
    assert table.genes == sorted(GENES) and table.counts.shape == (60, 12) and len(source.images("all")) == 60
    assert {p: set(table.folds[[i for i, q in enumerate(table.patients) if q == p]]) for p in SAMPLES} == \
        {p: {f} for p, f in SAMPLES.items()}
    # the spot order is the patch file's, whatever the .h5ad's row order
    with h5py.File(task / "patches" / "NCBI783.h5", "r") as h5:
        first = h5["barcode"][0, 0].decode()
    from harness.sources.hest_bench import read_expression

    row = sorted(SAMPLES).index("NCBI783") * 15
    assert table.counts[row] == pytest.approx(read_expression(task / "adata" / "NCBI783.h5ad", [first], table.genes)[0])
    # a split file that points outside the task folder is refused in one line
    (task / "splits" / "test_1.csv").write_text("sample_id,patches_path,expr_path\nX,../../../etc/hostname,adata/X.h5ad\n")
    broken = open_source("hest-idc-fixture", registry.datasets["hest-idc-fixture"],
                         DataContext(cache_dir=cache_dir, data_root=tmp_path))
    with pytest.raises(HarnessError, match="points outside"):
        broken.spots("all")


def test_an_absent_hest_task_is_skipped_with_the_download_command(tmp_path, cache_dir, capsys, monkeypatch):
    """Without any HEST-Bench folder, its tasks share one reason (one row of the run's summary, one
    command for all of them); with the folder there, a missing task names its own --include."""
    from harness.terminal import stdout

    # the reason holds tmp_path: at the default width, where the table folds it moves with the
    # path's length (a flake when pytest's numbered folder went from pytest-99 to pytest-100)
    monkeypatch.setattr(stdout, "width", 2000)
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    second = tmp_path / "hest-prad.yaml"
    second.write_text(REGISTRY.replace("IDC", "PRAD").replace("idc", "prad"))
    out, root = tmp_path / "out", tmp_path / "empty"
    args = ["run", "--model", "colour-stats", "--tasks", "hest-idc-fixture,hest-prad-fixture", "--include", str(spec),
            "--include", str(second), "--data-root", str(root), "--output", str(out), "--cache-dir", str(cache_dir)]
    capsys.readouterr()
    assert main(args) == 0
    shown = capsys.readouterr().out
    reasons = {t: json.loads((out / "colour-stats" / f"{t}.json").read_text())["reason"]
               for t in ("hest-idc-fixture", "hest-prad-fixture")}
    assert reasons["hest-idc-fixture"] == reasons["hest-prad-fixture"]
    assert "huggingface-cli download MahmoodLab/hest-bench" in reasons["hest-idc-fixture"]
    assert "hest-idc-fixture, hest-prad-fixture" in shown and shown.count("MahmoodLab/hest-bench --repo-type") == 1
    write_task(root / "hest-bench")  # IDC only: PRAD's reason is its own
    assert main([*args, "--overwrite"]) == 0
    result = json.loads((out / "colour-stats" / "hest-prad-fixture.json").read_text())
    assert result["status"] == "skipped" and "--include 'PRAD/*'" in result["reason"]
    assert json.loads((out / "colour-stats" / "hest-idc-fixture.json").read_text())["status"] == "ok"


def test_a_patch_file_whose_images_are_not_patches_is_one_line_before_any_read(tmp_path, cache_dir):
    """'img' is read a row at a time: a row of 20,000 x 20,000 px (a hostile file's shape) would be
    1.2 GB in memory before anything looked at it."""
    from harness.errors import HarnessError
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    task = write_task(tmp_path / "hest-bench", n_spots=2)
    with h5py.File(task / "patches" / "TENX95.h5", "a") as h5:
        del h5["img"]
        h5.create_dataset("img", shape=(2, 20_000, 20_000, 3), dtype=np.uint8)  # nothing written: a few bytes on disk
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    source = open_source("hest-idc-fixture", load_registry([spec]).datasets["hest-idc-fixture"],
                         DataContext(cache_dir=cache_dir, data_root=tmp_path))
    with pytest.raises(HarnessError, match=r"TENX95.h5: 'img' holds uint8 of shape \(2, 20000, 20000, 3\); HEST's "):
        source.images("all")


@pytest.mark.parametrize("layout", ["dense", "csr", "csc"])
def test_the_counts_read_are_scipys_for_any_rows_genes_and_read_size(tmp_path, monkeypatch, layout):
    """Spots and genes asked in any order (a spot twice), X read in parts of 7 values or all at once:
    the same counts as scipy's dense matrix, entries stored twice for one cell summed as scipy sums them."""
    import scipy.sparse

    from harness.sources import hest_bench

    rng = np.random.default_rng(1)
    n_obs, n_var = 40, 30
    dense = rng.poisson(0.7, (n_obs, n_var)).astype(np.float32) * (rng.uniform(size=(n_obs, n_var)) < 0.4)
    matrix = dense
    if layout != "dense":  # one cell stored twice, its two entries summed by scipy and by the reader
        sparse = (scipy.sparse.csr_matrix if layout == "csr" else scipy.sparse.csc_matrix)(dense)
        data, indices, indptr = list(sparse.data), list(sparse.indices), sparse.indptr.copy()
        data.insert(indptr[3], 5.0)
        indices.insert(indptr[3], 2)
        indptr[4:] += 1
        matrix = type(sparse)((np.array(data, np.float32), np.array(indices), indptr), shape=dense.shape)
        dense = matrix.toarray()
    obs, var = [f"spot{i}" for i in range(n_obs)], [f"G{j}" for j in range(n_var)]
    path = tmp_path / "x.h5ad"
    write_h5ad(path, matrix, obs, var, layout)
    rows = [17, 3, 39, 0, 3, 22]
    columns = [29, 2, 0, 11, 3]
    expected = dense[rows][:, columns]
    asked = ([obs[i] for i in rows], [var[j] for j in columns])
    assert hest_bench.read_expression(path, *asked).tolist() == expected.tolist()
    monkeypatch.setattr(hest_bench, "MAX_READ_VALUES", 7)
    assert hest_bench.read_expression(path, *asked).tolist() == expected.tolist()


def test_a_sample_is_read_in_parts_not_whole(tmp_path, monkeypatch):
    """A dense X of 400 spots x 20,000 genes (64 MB as float64), 5 genes asked, reads of at most
    200,000 values: the read's peak memory is a few parts, not the matrix."""
    import tracemalloc

    from harness.sources import hest_bench

    n_obs, n_var = 400, 20_000
    path = tmp_path / "wide.h5ad"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("X", shape=(n_obs, n_var), dtype=np.float32, chunks=(50, 2_000), compression="gzip")
        h5["X"][:, 7] = np.arange(n_obs)
    obs, var = [f"s{i}" for i in range(n_obs)], [f"G{j}" for j in range(n_var)]
    with h5py.File(path, "a") as h5:
        for name, index in (("obs", obs), ("var", var)):
            frame = h5.create_group(name)
            frame.attrs["_index"] = "_index"
            frame.create_dataset("_index", data=np.array(index, dtype=object), dtype=h5py.string_dtype())
    monkeypatch.setattr(hest_bench, "MAX_READ_VALUES", 200_000)
    tracemalloc.start()
    try:
        counts = hest_bench.read_expression(path, obs, ["G7", "G0", "G1", "G2", "G3"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts[:, 0].tolist() == list(range(n_obs)) and not counts[:, 1:].any()
    assert peak < 8 * n_obs * n_var / 10  # under a tenth of the matrix as float64 (the part: 1.6 MB)


@pytest.mark.parametrize("damage, message", [
    ("indptr", "indptr, indices and data do not agree"),
    ("indices", "indices fall outside its shape"),
    ("negative", "negative or non-finite"),
    ("nan", "negative or non-finite"),
    ("coo", "a 'coo_matrix' group; only dense, csr_matrix and csc_matrix are read"),
])
def test_a_damaged_count_matrix_is_one_line_naming_its_file(tmp_path, damage, message):
    from harness.errors import HarnessError
    from harness.sources.hest_bench import read_expression

    obs, var = ["a", "b", "c"], ["G0", "G1"]
    path = tmp_path / "bad.h5ad"
    write_h5ad(path, np.array([[1, 0], [0, 2], [3, 4]], np.float32), obs, var, "csr")
    with h5py.File(path, "a") as h5:
        x = h5["X"]
        if damage == "indptr":
            x["indptr"][...] = [0, 3, 2, 4]
        elif damage == "indices":
            x["indices"][0] = 9
        elif damage in ("negative", "nan"):
            x["data"][0] = -1.0 if damage == "negative" else np.nan
        else:
            x.attrs["encoding-type"] = "coo_matrix"
    with pytest.raises(HarnessError) as raised:
        read_expression(path, obs, var)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value) and "\n" not in str(raised.value)


def test_a_task_on_hests_gene_list_reads_those_genes_alone(tmp_path, cache_dir, monkeypatch):
    """With gene_selection 'given' the runner asks for the listed genes only (given_spots: 8 columns
    here, 50 of tens of thousands on HEST-Bench) and scores what the whole table gave; with
    gene_selection 'train' every gene every sample measures is read, the genes chosen per fold."""
    from harness.sources.hest_bench import HestBenchSource

    write_task(tmp_path / "data" / "hest-bench")
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY + REGISTRY.split("tasks:\n")[1].replace("hest-idc-fixture:", "hest-idc-train:", 1)
                    .replace("gene_selection: given", "gene_selection: train"))
    args = ["run", "--model", "colour-stats", "--include", str(spec), "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(cache_dir)]
    widths = []
    table = HestBenchSource._table
    monkeypatch.setattr(HestBenchSource, "_table", lambda self, only: widths.append(len(table(self, only).genes))
                        or table(self, only))
    assert main([*args, "--tasks", "hest-idc-fixture,hest-idc-train", "--output", str(tmp_path / "out")]) == 0
    given, train = (json.loads((tmp_path / "out" / "colour-stats" / f"{t}.json").read_text())
                    for t in ("hest-idc-fixture", "hest-idc-train"))
    assert widths == [8, 12] and given["status"] == train["status"] == "ok"
    # the same score as the whole table gives
    monkeypatch.setattr(HestBenchSource, "given_spots", HestBenchSource.spots)
    assert main([*args, "--tasks", "hest-idc-fixture", "--output", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "colour-stats" / "hest-idc-fixture.json").read_text())
    assert whole["metrics"] == given["metrics"] and whole["details"] == given["details"]


def test_without_h5py_a_present_hest_task_is_skipped_with_the_extra_before_any_read(tmp_path, cache_dir, capsys,
                                                                                   monkeypatch):
    import sys

    write_task(tmp_path / "data" / "hest-bench")
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if the hest extra were not installed
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    common = ["--include", str(spec), "--data-root", str(tmp_path / "data")]
    assert main(["list", *common]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "hest-idc-fixture" in line]
    assert listed and "present, needs [hest]" in listed[0], listed
    out = tmp_path / "out"
    assert main(["run", "--model", "colour-stats", "--tasks", "hest-idc-fixture", *common, "--output", str(out),
                 "--cache-dir", str(cache_dir)]) == 0
    result = json.loads((out / "colour-stats" / "hest-idc-fixture.json").read_text())
    assert result["status"] == "skipped" and result["reason"] == "HEST-Bench data is HDF5: pip install -e '.[hest]' (h5py)"
    assert "embedding" not in capsys.readouterr().err


def replace_dataset(path: Path, name: str, value) -> None:
    with h5py.File(path, "a") as h5:
        del h5[name]
        h5[name] = value


SPLIT_DAMAGES = {  # what a copy, an edit or a hand-made split does to HEST's split files -> the line said
    "a copy of a test file": (lambda s: (s / "test_0 (1).csv").write_text((s / "test_0.csv").read_text()),
                              r"test_0 \(1\).csv: not a HEST split file name \(test_<i>.csv with a number i\)"),
    "two files of one fold number": (lambda s: (s / "test_00.csv").write_text((s / "test_0.csv").read_text()),
                                     r"test_0+.csv: test_0+.csv has the same fold number; keep one of them"),
    "one test file naming every sample": (
        lambda s: [(s / f"{k}_1.csv").unlink() for k in ("test", "train")] + [(s / "train_0.csv").unlink(),
                   (s / "test_0.csv").write_text("sample_id,patches_path,expr_path\n" + "".join(
                       f"{x},patches/{x}.h5,adata/{x}.h5ad\n" for x in SAMPLES))],
        r"test_0.csv: the only test split file names every sample, so its fold has none to train on"),
    "a train file naming a sample no fold tests": (
        lambda s: (s / "test_1.csv").write_text("sample_id,patches_path,expr_path\nNCBI783,patches/NCBI783.h5,"
                                                "adata/NCBI783.h5ad\n"),
        r"train_1.csv: it leaves out 'NCBI785', which another train file names and no test file does; this "
        "harness trains fold 1 on every sample"),
    "a train file naming a tested sample": (
        lambda s: (s / "train_1.csv").write_text((s / "train_1.csv").read_text() + "NCBI783,patches/NCBI783.h5,"
                                                 "adata/NCBI783.h5ad\n"),
        r"train_1.csv: it names 'NCBI783', which test_1.csv names too"),
    "a train file leaving a sample out": (
        lambda s: (s / "train_1.csv").write_text("sample_id,patches_path,expr_path\nTENX95,patches/TENX95.h5,"
                                                 "adata/TENX95.h5ad\n"),
        r"train_1.csv: it leaves out 'TENX99', which another fold tests"),
    "a train file without its test file": (lambda s: (s / "test_1.csv").rename(s / "test_2.csv"),
                                           r"train_1.csv: there is no test_1.csv to go with it"),
    "an empty sample id": (lambda s: (s / "test_1.csv").write_text(
        "sample_id,patches_path,expr_path\n,patches/NCBI783.h5,adata/NCBI783.h5ad\n"),
        r"test_1.csv: line 2 has an empty 'sample_id'; fill it in or remove the row"),
    "duplicate barcodes": (lambda s: replace_dataset(s.parent / "patches" / "TENX95.h5", "barcode",
                                                     np.array([b"A-1", b"A-1"]).reshape(-1, 1)),
                           r"TENX95.h5: barcode 'A-1' names more than one patch"),
    "fewer barcodes than patches": (lambda s: replace_dataset(s.parent / "patches" / "TENX95.h5", "barcode",
                                                              np.array([b"TENX95-000-1"]).reshape(-1, 1)),
                                    r"TENX95.h5: 2 patches in 'img' but 1 barcodes"),
    "float patches": (lambda s: replace_dataset(s.parent / "patches" / "TENX95.h5", "img",
                                                np.zeros((2, 48, 48, 3), np.float32)),
                      r"TENX95.h5: 'img' holds float32 of shape \(2, 48, 48, 3\); HEST's patches are uint8"),
    "a fold without spots": (lambda s: [replace_dataset(s.parent / "patches" / f"{n}.h5", d, v) for n in ("NCBI783", "NCBI785")
                                        for d, v in (("img", np.zeros((0, 48, 48, 3), np.uint8)),
                                                     ("barcode", np.zeros((0, 1), "S12")))],
                             r"test_1.csv: its samples' patch files hold no spots"),
    "a gene list that is a string": (lambda s: (s.parent / "var_50genes.json").write_text('{"genes": "GENE0"}'),
                                     r"var_50genes.json: 'genes' is not a list of gene names"),
}


@pytest.mark.parametrize("damage", SPLIT_DAMAGES)
def test_damaged_split_and_patch_files_are_one_line_naming_the_file(tmp_path, damage):
    """Each was read on as something else (a copy of a test file failed as int()'s "invalid literal",
    train files were never read (a sample they alone named was dropped), a barcode twice or missing took another spot's counts, one fold
    failed in Ridge's words, a string gene list became its letters) or failed in PIL's words."""
    from harness.errors import HarnessError
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    task = write_task(tmp_path / "hest-bench", n_spots=2)
    edit, message = SPLIT_DAMAGES[damage]
    edit(task / "splits")
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    source = open_source("hest-idc-fixture", load_registry([spec]).datasets["hest-idc-fixture"],
                         DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path))
    with pytest.raises(HarnessError, match=message) as raised:
        source.images("all")
        source.given_spots("all")
    assert "\n" not in str(raised.value)


def test_one_test_file_and_one_train_file_are_one_fold_trained_on_the_train_samples(tmp_path, cache_dir):
    """A folder laid out as HEST's with a single split (users' own data): the samples only train_0.csv
    names are trained on and never tested (fold -1). Before, they were dropped, and the fold failed
    in Ridge's words with nothing to train on."""
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    task = write_task(tmp_path / "data" / "hest-bench")
    for kind in ("test", "train"):
        (task / "splits" / f"{kind}_1.csv").unlink()
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    source = open_source("hest-idc-fixture", load_registry([spec]).datasets["hest-idc-fixture"],
                         DataContext(cache_dir=cache_dir, data_root=tmp_path / "data"))
    table = source.spots("all")
    assert {p: set(table.folds[[i for i, q in enumerate(table.patients) if q == p]]) for p in SAMPLES} == \
        {"TENX95": {0}, "TENX99": {0}, "NCBI783": {-1}, "NCBI785": {-1}}
    out = tmp_path / "out"
    assert main(["run", "--model", "colour-stats", "--tasks", "hest-idc-fixture", "--include", str(spec),
                 "--data-root", str(tmp_path / "data"), "--output", str(out), "--cache-dir", str(cache_dir)]) == 0
    result = json.loads((out / "colour-stats" / "hest-idc-fixture.json").read_text())
    assert result["status"] == "ok" and result["n_samples"] == {"spots": 60, "patients": 4, "folds": 1}
    assert len(result["metrics"]["pearson"]["values"]) == 1


@pytest.mark.parametrize("named", ["../../../etc/hostname", "/etc/hostname", "C:\\x.h5", "patches/../../x.h5"])
def test_a_split_file_may_not_name_a_file_outside_the_task_but_a_link_inside_is_read(tmp_path, cache_dir, named):
    """A split file comes from outside: its names stay in the task folder. A link the user placed
    there is followed: `huggingface-cli download --local-dir` made the large files links into the
    Hub cache before huggingface_hub 0.23, and resolving the path refused every patch file."""
    from harness.errors import HarnessError
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source

    task = write_task(tmp_path / "data" / "hest-bench", n_spots=2)
    elsewhere = tmp_path / "hub-cache" / "blobs"
    elsewhere.mkdir(parents=True)
    for sample in SAMPLES:  # every patch file a link to a blob outside the task folder
        blob = elsewhere / f"{sample}-blob"
        (task / "patches" / f"{sample}.h5").rename(blob)
        (task / "patches" / f"{sample}.h5").symlink_to(blob)
    spec = tmp_path / "hest.yaml"
    spec.write_text(REGISTRY)
    dataset = load_registry([spec]).datasets["hest-idc-fixture"]
    source = open_source("hest-idc-fixture", dataset, DataContext(cache_dir=cache_dir, data_root=tmp_path / "data"))
    assert len(source.images("all")) == 8 and source.images("all")[0].shape == (48, 48, 3)
    (task / "splits" / "test_1.csv").write_text(f"sample_id,patches_path,expr_path\nX,{named},adata/NCBI783.h5ad\n")
    broken = open_source("hest-idc-fixture", dataset, DataContext(cache_dir=cache_dir, data_root=tmp_path / "data"))
    with pytest.raises(HarnessError, match="points outside"):
        broken.images("all")
