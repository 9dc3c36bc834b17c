"""Record what PathoROB's own code computes on the fixture tables (tests/harness/scoring/pathorob_fixture.py).

Not run by the tests: it needs a PathoROB checkout (not shipped; BSD-3-Clause) and matplotlib.

    git clone https://github.com/bifold-pathomics/PathoROB /tmp/pathorob && git -C /tmp/pathorob checkout 46594e9
    python -m venv /tmp/prv && /tmp/prv/bin/pip install numpy scikit-learn scipy pandas matplotlib tqdm
    PYTHONPATH=/tmp/pathorob:. /tmp/prv/bin/python tests/assets/pathorob-reference/record.py

Writes reference.json beside this file. Calls, per metric, the functions PathoROB's command
lines call: robustness_index.select_optimal_k_value (dataset "camelyon", as evaluate_model calls
it after its Normalizer), apd.apd.compute (dataset "camelyon", "tcga" with its 4 x 4 schedule, and "tolkach_esca" with its
case-level test splits; 2 repetitions) and
clustering_score.compute (dataset "camelyon", K in 2..8, 3 trials), with features written by its
FeatureDataManager; and robustness_index_paired.select_optimal_k_value_pairs (dataset "tcga", as
evaluate_model_pairs calls it, with the case_id column get_meta adds).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.preprocessing import Normalizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.harness.scoring.pathorob_fixture import (  # noqa: E402
    apd_fixture, clustering_fixture, paired_fixture, robustness_fixture, tcga_apd_fixture, tolkach_apd_fixture,
)

import pathorob  # noqa: E402
from pathorob.apd import apd  # noqa: E402
from pathorob.clustering_score import clustering_score  # noqa: E402
from pathorob.features.data_manager import FeatureDataManager  # noqa: E402
from pathorob.robustness_index.robustness_index import construct_patch_index, select_optimal_k_value  # noqa: E402
from pathorob.robustness_index.robustness_index_paired import select_optimal_k_value_pairs  # noqa: E402


def write(features_dir: Path, metadata_dir: Path, name: str, meta: pd.DataFrame, x: np.ndarray,
          dataset: str = "camelyon") -> None:
    metadata_dir.mkdir(parents=True, exist_ok=True)
    meta.to_csv(metadata_dir / f"{name}.csv", index=False)
    FeatureDataManager(features_dir=features_dir, metadata_dir=metadata_dir).save_features("fixture", dataset, x, meta)


def record_robustness(work: Path) -> dict:
    meta, x = robustness_fixture()
    work.mkdir(parents=True, exist_ok=True)
    manager = FeatureDataManager(features_dir=work / "f", metadata_dir=work / "m")
    meta = construct_patch_index(manager, meta.copy())
    embeddings = Normalizer(norm="l2").fit_transform(x)
    k_opt, accuracies, stats = select_optimal_k_value(
        "camelyon", "fixture", embeddings, meta, work, work, num_workers=1, opt_k=0, plot_graphs=False)
    index = int(np.where(np.asarray(stats["k"]) == k_opt)[0][0])
    return {"k_opt": int(k_opt), "ks": [int(k) for k in accuracies["k"]],
            "balanced_accuracies": [float(a) for a in accuracies["bal_acc"]],
            "robustness_index_curve": [float(v) for v in stats["robustness_index"]],
            "robustness_index": float(stats["robustness_index"][index])}


def record_paired(work: Path) -> dict:
    meta, x = paired_fixture()
    work.mkdir(parents=True, exist_ok=True)
    manager = FeatureDataManager(features_dir=work / "f", metadata_dir=work / "m")
    meta = construct_patch_index(manager, meta.copy())
    meta["case_id"] = [slide_id[:12] for slide_id in meta["slide_id"].values]
    embeddings = Normalizer(norm="l2").fit_transform(x)
    k_opt, accuracies, stats = select_optimal_k_value_pairs(
        "tcga", "fixture", np.array(meta["patch_index"].values), embeddings, meta, work, work, num_workers=1,
        opt_k=0, plot_graphs=False)
    index = int(np.where(np.asarray(stats["k"]) == k_opt)[0][0])
    return {"k_opt": int(k_opt), "ks": [int(k) for k in accuracies["k"]],
            "balanced_accuracies": [float(a) for a in accuracies["bal_acc"]],
            "robustness_index_curve": [float(v) for v in stats["robustness_index"]],
            "robustness_index": float(stats["robustness_index"][index])}


def record_apd(work: Path, dataset: str = "camelyon", metadata: str = "camelyon", fixture=apd_fixture) -> dict:
    meta, x = fixture()
    write(work / "features", work / "metadata", metadata, meta, x, dataset=dataset)
    apd.compute("fixture", dataset, features_dir=str(work / "features"), metadata_dir=str(work / "metadata"),
                results_dir=str(work / "apd"), iterations=2)
    raw = json.loads((work / "apd" / "fixture" / f"{dataset}_raw.json").read_text())
    summary = json.loads((work / "apd" / "fixture" / f"{dataset}_summary.json").read_text())
    return {"repetitions": 2, "in_domain_accuracies": raw["ID_test_accuracies"],
            "out_of_domain_accuracies": raw["OOD_test_accuracies"],
            "apd_in_domain": summary["apd_id"], "apd_out_of_domain": summary["apd_ood"]}


def record_clustering(work: Path) -> dict:
    meta, x = clustering_fixture()
    write(work / "cfeatures", work / "cmetadata", "camelyon_reduced", meta, x)
    summary = clustering_score.compute("fixture", "camelyon", features_dir=str(work / "cfeatures"),
                                       metadata_dir=str(work / "cmetadata"), results_dir=str(work / "clu"),
                                       minK=2, maxK=8, num_trials=3, overwrite_results=True)
    aris = pd.read_csv(work / "clu" / "fixture" / "camelyon" / "aris.csv")
    per = aris.groupby("combination", sort=False)[["clustering_score", "ari_bio", "ari_mc"]].mean()
    return {"min_k": 2, "max_k": 8, "trials": 3, "clustering_score": summary["clustering_score_mean"],
            "clustering_score_std": summary["clustering_score_mean_std"],
            "per_combination": {name: {"score": float(r.clustering_score), "ari_class": float(r.ari_bio),
                                       "ari_centre": float(r.ari_mc)} for name, r in per.iterrows()}}


def main() -> None:
    checkout = Path(pathorob.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "46594e9 (archive)"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference = {
            "pathorob_commit": commit,
            "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__, "pandas": pd.__version__},
            "robustness_index": record_robustness(work / "ri"),
            "paired_robustness_index": record_paired(work / "paired"),
            "apd": record_apd(work / "apd-work"),
            "tcga_apd": record_apd(work / "tcga-apd-work", "tcga", "tcga_4x4", tcga_apd_fixture),
            "tolkach_apd": record_apd(work / "tolkach-apd-work", "tolkach_esca", "tolkach_esca", tolkach_apd_fixture),
            "clustering": record_clustering(work / "clu-work"),
        }
    (HERE / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(json.dumps({k: v for k, v in reference.items() if k != "apd"}, indent=1)[:2000])


if __name__ == "__main__":
    main()
