"""Reading HEST-Bench expression files: the harness's reader against reading each sample's whole X.

Writes a HEST-Bench-shaped set of .h5ad files (random counts, Visium-like: --spots spots x --genes
genes per sample, --density of the cells stored, the var index shuffled per sample and one gene
each sample alone measures), then builds the table of the genes every sample measures, spot for
spot, twice, each in a fresh process:
  harness   `read_expression` per sample, as the `hest` source does: only the spots and genes asked,
            X read a part at a time (at most MAX_READ_VALUES values), written into the table
  whole X   what the source did before: each sample's whole X as float64 (dense, or the sparse
            matrix expanded), every sample's kept until the table is assembled, genes looked up
            by list position
and prints for each: seconds and peak memory (its process's own peak RSS), their ratios, and whether
the two tables are equal. Then, in a third process, the table of 50 listed genes alone, as the
source's `given_spots` reads it for a task on HEST's gene list, and whether it equals those
columns of the whole table.

Usage: python benchmarks/hest_read.py [--samples 4] [--spots 3000] [--genes 18000] [--density 0.08]
       [--layout csr|csc|dense]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_samples(folder: Path, samples: int, spots: int, genes: int, density: float, layout: str) -> None:
    import h5py
    import scipy.sparse

    rng = np.random.default_rng(0)
    names = [f"GENE{j}" for j in range(genes)]
    for s in range(samples):
        matrix = scipy.sparse.random(spots, genes, density=density, format="csr", random_state=s,
                                     data_rvs=lambda n: rng.integers(1, 50, n)).astype(np.float32)
        var = list(np.array(names)[rng.permutation(genes)]) + [f"ONLY{s}"]
        matrix = scipy.sparse.hstack([matrix, scipy.sparse.csr_matrix(np.ones((spots, 1), np.float32))], format="csr")
        with h5py.File(folder / f"s{s}.h5ad", "w") as h5:
            if layout == "dense":
                h5.create_dataset("X", data=matrix.toarray(), chunks=(min(spots, 256), min(genes, 1024)))
            else:
                stored = matrix if layout == "csr" else matrix.tocsc()
                x = h5.create_group("X")
                x.attrs["encoding-type"], x.attrs["shape"] = f"{layout}_matrix", np.array(matrix.shape)
                x["data"], x["indices"], x["indptr"] = stored.data, stored.indices, stored.indptr
            for group, index in (("obs", [f"s{s}-{i}" for i in range(spots)]), ("var", var)):
                frame = h5.create_group(group)
                frame.attrs["_index"] = "_index"
                frame.create_dataset("_index", data=np.array(index, dtype=object), dtype=h5py.string_dtype())
        (folder / f"s{s}.barcodes.json").write_text(json.dumps([f"s{s}-{i}" for i in rng.permutation(spots)]))


def build(folder: Path, how: str) -> np.ndarray:
    from harness.sources.hest_bench import expression_genes, read_expression

    paths = sorted(folder.glob("*.h5ad"))
    codes = [json.loads(p.with_suffix(".barcodes.json").read_text()) for p in paths]
    if how in ("harness", "listed"):  # as HestBenchSource.spots and given_spots do
        genes = sorted(set.intersection(*(set(expression_genes(p)) for p in paths)))
        if how == "listed":
            genes = genes[:: max(1, len(genes) // LISTED)][:LISTED]
        counts = np.empty((sum(map(len, codes)), len(genes)), dtype=np.float32)
        start = 0
        for path, barcodes in zip(paths, codes):
            counts[start : start + len(barcodes)] = read_expression(path, barcodes, genes)
            start += len(barcodes)
        return counts
    tables = [whole_x(path, barcodes) for path, barcodes in zip(paths, codes)]
    genes = sorted(set.intersection(*(set(names) for _, names in tables)))
    return np.concatenate([m[:, [names.index(g) for g in genes]] for m, names in tables]).astype(np.float32)


LISTED = 50  # HEST's gene lists (var_50genes.json)


def whole_x(path: Path, barcodes: list[str]) -> tuple[np.ndarray, list[str]]:
    """The reader before: the whole X as float64, then the rows of these barcodes."""
    import h5py

    def index(frame):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(frame[frame.attrs["_index"]])]

    with h5py.File(path, "r") as h5:
        spots, genes = index(h5["obs"]), index(h5["var"])
        rows = np.array([{c: i for i, c in enumerate(spots)}[c] for c in barcodes])
        x = h5["X"]
        if isinstance(x, h5py.Dataset):
            return np.asarray(x, dtype=np.float64)[rows], genes
        data, indices, indptr = np.asarray(x["data"]), np.asarray(x["indices"]), np.asarray(x["indptr"])
        if x.attrs["encoding-type"] == "csr_matrix":
            out = np.zeros((len(rows), len(genes)), dtype=np.float64)
            for i, row in enumerate(rows):
                out[i, indices[indptr[row] : indptr[row + 1]]] = data[indptr[row] : indptr[row + 1]]
            return out, genes
        out = np.zeros((len(spots), len(genes)), dtype=np.float64)
        for column in range(len(genes)):
            out[indices[indptr[column] : indptr[column + 1]], column] = data[indptr[column] : indptr[column + 1]]
        return out[rows], genes


def own_peak_mb() -> float:
    """This process's own peak resident memory (VmHWM, Linux). Not ru_maxrss: Linux carries the
    parent's peak over fork and exec into it, so a child started after the parent held a large
    table would report the parent's peak (seen here: 1,925 MB for a 262 MB read)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(folder: Path, how: str, out: Path) -> None:
    started = time.perf_counter()
    counts = build(folder, how)
    elapsed = time.perf_counter() - started
    peak_mb = own_peak_mb()  # before the save, which is the benchmark's, not the reader's
    np.save(out, counts)
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "shape": list(counts.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--spots", type=int, default=3000)
    parser.add_argument("--genes", type=int, default=18000)
    parser.add_argument("--density", type=float, default=0.08)
    parser.add_argument("--layout", choices=["csr", "csc", "dense"], default="csr")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1], Path(args.child[2]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_samples(folder, args.samples, args.spots, args.genes, args.density, args.layout)
        print(f"{args.samples} samples x {args.spots:,} spots x {args.genes:,} genes, {args.layout}, "
              f"density {args.density}")
        measured = {}
        for how in ("harness", "whole X"):
            done = subprocess.run([sys.executable, __file__, "--child", str(folder), how, str(folder / f"{how}.npy")],
                                  capture_output=True, text=True, check=True)
            measured[how] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{how:8s} {measured[how]['seconds']:8.2f} s  {measured[how]['peak_mb']:9.0f} MB peak RSS  "
                  f"table {measured[how]['shape']}")
        same = np.array_equal(np.load(folder / "harness.npy"), np.load(folder / "whole X.npy"))
        harness, whole = measured["harness"], measured["whole X"]
        print(f"ratio (whole X / harness): time {whole['seconds'] / harness['seconds']:.2f}, "
              f"peak memory {whole['peak_mb'] / harness['peak_mb']:.2f}; tables equal: {same}")
        done = subprocess.run([sys.executable, __file__, "--child", str(folder), "listed", str(folder / "listed.npy")],
                              capture_output=True, text=True, check=True)
        listed = json.loads(done.stdout.strip().splitlines()[-1])
        table = np.load(folder / "harness.npy")
        columns = np.arange(table.shape[1])[:: max(1, table.shape[1] // LISTED)][:LISTED]
        print(f"listed   {listed['seconds']:8.2f} s  {listed['peak_mb']:9.0f} MB peak RSS  table {listed['shape']}  "
              f"(the {LISTED} listed genes alone; equal to those columns: "
              f"{np.array_equal(np.load(folder / 'listed.npy'), table[:, columns])})")


if __name__ == "__main__":
    main()
