"""Medical-centre robustness (PathoROB): does a tile resemble its biology or its centre?

The dataset's tiles carry a class, a slide and a medical centre (`TileSource.origins`). All
splits are pooled (PathoROB draws its own splits). In-domain centres are the task's `in_domain`
list, else the tiles the dataset marks "ID" (PathoROB's subset column), else every centre; the
robustness index and the clustering score read the in-domain tiles only, as PathoROB does.

With `pairs` the robustness index is PathoROB's paired one (its TCGA setting): neighbours are
looked up within subsets of two classes x two centres, either the dataset's own subset marks
(PathoROB's tcga_2x2 table; "OOD" left out) or every class pair x in-domain centre pair whose
four groups exist. APD and the clustering score then belong in another task (PathoROB reads
them off its 4 x 4 table).

Metrics (harness/scoring/pathorob_metrics.py has the definitions and PathoROB's code they equal):
  robustness_index        neighbours that share the class across centres / (those + neighbours
                          that share only the centre), at PathoROB's k_opt; 95% CI over tiles
  knn_balanced_accuracy   the k_opt majority vote that chose k_opt
  apd_in_domain           average performance drop of a logistic regression as training ties
  apd_out_of_domain       class to centre more and more (two in-domain centres, or four x four
                          classes: PathoROB's TCGA schedule); 0 = no drop
  clustering_score        ARI(k-means, class) - ARI(k-means, centre), per class pair x centre pair
The details hold k_opt, the RI curve, the chance index of this data (what a random
representation scores), the APD accuracies per split and the per-combination ARIs.

PathoROB reads some scores off a reduced subset of its tables (camelyon_reduced: the clustering
score; tolkach_esca_reduced: the index and the clustering score). `index_rows` and
`clustering.rows` name such a table, shipped in harness/data/pathorob: its rows are found in the
dataset by slide and patch id (the dataset's patch_column) and read in the table's order.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from typing import ClassVar, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.evaluation import Evaluation, MetricInfo, SCORE, TaskData, TaskFamily, summarise
from harness.progress import progress_bar
from harness.scoring import pathorob_metrics as pathorob
from harness.scoring.bootstrap import N_RESAMPLES

# PathoROB's reduced subsets, shipped in harness/data/pathorob (their README: source and licence)
ReducedTable = Literal["camelyon_reduced", "tolkach_esca_reduced"]


class PerformanceDropParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base: int = Field(7, ge=1, le=50)  # slides per group at split 0; splits 0..base (PathoROB camelyon: 7)
    patches_per_slide: int = Field(300, ge=1, le=100_000)  # PathoROB camelyon: 300
    repetitions: int = Field(20, ge=2, le=1000)  # PathoROB: 20
    # two_centre: base + 1 splits (camelyon, tolkach_esca); four_by_four: PathoROB's TCGA schedule, whose
    # diagonal pairs the i-th in-domain centre (in_domain's order) with the i-th class (the dataset's order)
    schedule: Literal["two_centre", "four_by_four"] = "two_centre"
    # PathoROB's Tolkach ESCA constraint: per repetition a feasible test-case split per centre, whose
    # cases' slides are kept for the test region (harness/data/pathorob/tolkach_splits.json)
    test_cases: Literal["tolkach_splits"] | None = None


class ClusteringParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_k: int = Field(2, ge=2)
    max_k: int = Field(30, ge=2, le=200)
    trials: int = Field(50, ge=1, le=1000)
    rows: ReducedTable | None = None  # PathoROB's reduced subset to cluster (default: every in-domain tile)


class CentreRobustnessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    in_domain: list[str] | None = None  # centres of the in-domain set (default: the dataset's "ID" mark)
    out_of_domain: list[str] | None = None  # default: the other centres (or the dataset's "OOD" mark)
    max_k: int = Field(600, ge=1, le=100_000)  # largest k tried for k_opt (PathoROB camelyon 600, tolkach 1000)
    index_rows: ReducedTable | None = None  # PathoROB's reduced subset for the index (tolkach_esca_reduced)
    apd: PerformanceDropParams | None = Field(default_factory=PerformanceDropParams)  # null: not computed
    clustering: ClusteringParams | None = Field(default_factory=ClusteringParams)  # null: not computed
    pairs: Literal["subsets", "class_and_centre_pairs"] | None = None  # PathoROB's paired RI (TCGA: max_k 1200)
    bootstrap_resamples: int = Field(N_RESAMPLES, ge=0, le=100_000)  # 0: the index without an interval

    @model_validator(mode="after")
    def _reduced_rows_are_unpaired(self):
        if self.pairs is not None and self.index_rows is not None:
            raise ValueError("index_rows selects rows for the unpaired index; the paired one reads its subsets: "
                             "drop one of index_rows and pairs")
        return self

    @model_validator(mode="after")
    def _paired_scores_the_index_only(self):
        if self.pairs is not None and (self.apd is not None or self.clustering is not None):
            raise ValueError("pairs scores the robustness index only (PathoROB reads APD and the clustering "
                             "score off its unpaired table): set apd: null and clustering: null, and score "
                             "those in a task without pairs")
        return self


ROBUSTNESS = MetricInfo(group="robustness")
DROP = MetricInfo(bounds=(-1.0, None), group="robustness")  # a relative change of accuracy; 0 = no drop
CLUSTERING = MetricInfo(bounds=(-1.5, 1.5), group="robustness")  # ARI in [-0.5, 1], a difference of two


def pooled(data: TaskData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Embeddings, class names, slides, centres and subset marks of all splits, in split order."""
    missing = [name for name, s in data.splits.items() if s.centres is None or s.slides is None or s.labels is None]
    if missing:
        raise ValueError(f"centre robustness needs every tile's class, slide and medical centre; split "
                         f"'{missing[0]}' has none (declare the dataset's slide_column and centre_column)")
    splits = list(data.splits.values())
    names = np.asarray(data.class_names, dtype=object)
    subsets = [s.subsets for s in splits]
    return (np.concatenate([s.embeddings for s in splits]),
            names[np.concatenate([s.labels for s in splits])].astype(str),
            np.concatenate([s.slides for s in splits]).astype(str),
            np.concatenate([s.centres for s in splits]).astype(str),
            None if any(m is None for m in subsets) else np.concatenate(subsets).astype(str))


def pooled_patches(data: TaskData) -> np.ndarray | None:
    """Each tile's id within its slide, all splits in split order; None where a split lacks them."""
    patches = [s.patches for s in data.splits.values()]
    return None if any(p is None for p in patches) else np.concatenate(patches).astype(str)


def reduced_rows(table: str, slides: np.ndarray, patches: np.ndarray | None, biology: np.ndarray,
                 centres: np.ndarray) -> np.ndarray:
    """The rows of the data that PathoROB's reduced `table` lists, in the table's order (which its
    k-means and neighbour counts see). Every listed tile must be in the data with the table's class
    and centre; else one line says which and what to check."""
    if patches is None:
        raise ValueError(f"PathoROB's {table} names tiles by slide and patch id: declare the dataset's "
                         "patch_column (PathoROB's patch_id)")
    where = {(s, p): i for i, (s, p) in enumerate(zip(slides, patches))}
    if len(where) < len(slides):
        raise ValueError(f"{len(slides) - len(where)} tiles share a slide and patch id with another, so PathoROB's "
                         f"{table} cannot name them: check the dataset's slide_column and patch_column")
    listed = reduced_table(table)
    index = [where.get((r["slide_id"], r["patch_id"])) for r in listed]
    missing = [r for r, i in zip(listed, index) if i is None]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(listed)} tiles of PathoROB's {table} are not in the data (the "
                         f"first: slide {missing[0]['slide_id']!r}, patch {missing[0]['patch_id']!r}): this task "
                         "needs PathoROB's full dataset; download it again, or drop index_rows / clustering.rows")
    for r, i in zip(listed, index):
        if (biology[i], centres[i]) != (r["biological_class"], r["medical_center"]):
            raise ValueError(f"slide {r['slide_id']!r}, patch {r['patch_id']!r} is {biology[i]} at {centres[i]} in "
                             f"the data but {r['biological_class']} at {r['medical_center']} in PathoROB's {table}: "
                             "the dataset is not the one the table describes")
    return np.asarray(index, dtype=np.int64)


@lru_cache(maxsize=None)
def reduced_table(table: str) -> tuple[dict, ...]:
    """The rows of PathoROB's reduced `table` (harness/data/pathorob), read once per process (the
    Tolkach ESCA task reads tolkach_esca_reduced for the index and for the clustering score)."""
    import csv
    from importlib.resources import files

    with files("harness").joinpath("data", "pathorob", f"{table}.csv").open(newline="") as handle:
        return tuple(csv.DictReader(handle))


def feasible_test_cases(name: str) -> dict[str, list[list[str]]]:
    """PathoROB's feasible test-case lists per centre (`name`.json in harness/data/pathorob)."""
    import json
    from importlib.resources import files

    return json.loads(files("harness").joinpath("data", "pathorob", f"{name}.json").read_text())["test"]


def slides_together(slides: np.ndarray) -> np.ndarray:
    """A row order with each slide's tiles contiguous (slides in first-seen order, rows in their
    order within): APD reads a group's tiles `patches_per_slide` at a time, as PathoROB reads its
    metadata file, whose slides are contiguous. Already-contiguous data keeps its order."""
    first: dict[str, int] = {}
    rank = np.array([first.setdefault(s, len(first)) for s in slides])
    return np.argsort(rank, kind="stable")


def domains(centres: np.ndarray, subsets: np.ndarray | None, params: CentreRobustnessParams) -> tuple[list[str], list[str]]:
    present = sorted({str(c) for c in centres})
    if params.in_domain is not None:
        unknown = sorted(set(params.in_domain) - set(present))
        if unknown:
            raise ValueError(f"in_domain centres {unknown} are not in the data (centres: {present})")
        inside = list(params.in_domain)
    elif subsets is not None:
        inside = [str(c) for c in dict.fromkeys(centres[subsets == "ID"])]
    else:
        inside = [str(c) for c in dict.fromkeys(centres)]
    if params.out_of_domain is not None:
        unknown = sorted(set(params.out_of_domain) - set(present))
        if unknown:
            raise ValueError(f"out_of_domain centres {unknown} are not in the data (centres: {present})")
        outside = list(params.out_of_domain)
    elif subsets is not None and params.in_domain is None:
        outside = [str(c) for c in dict.fromkeys(centres[subsets == "OOD"])]
    else:
        outside = [str(c) for c in dict.fromkeys(centres) if c not in inside]
    if len(inside) < 2:
        raise ValueError(f"centre robustness needs at least two in-domain centres; got {inside}")
    return inside, outside


def pair_subsets(biology: np.ndarray, centres: np.ndarray, subsets: np.ndarray | None,
                 params: CentreRobustnessParams) -> tuple[np.ndarray, np.ndarray]:
    """(rows, the pair subset of each row) of the paired evaluation; a tile may be in several subsets."""
    if params.pairs == "subsets":
        if subsets is None:
            raise ValueError("pairs: subsets needs the dataset's subset column to name each tile's pair "
                             "subset (PathoROB's tcga_2x2 table); or use pairs: class_and_centre_pairs")
        rows = np.flatnonzero(subsets != "OOD")
        return rows, subsets[rows]
    inside, _ = domains(centres, subsets, params)
    rows, names = [], []
    for b1, b2 in combinations(sorted(set(biology)), 2):
        for c1, c2 in combinations(inside, 2):
            groups = [(biology == b) & (centres == c) for b in (b1, b2) for c in (c1, c2)]
            if all(g.any() for g in groups):
                members = np.flatnonzero(np.logical_or.reduce(groups))
                rows.append(members)
                names.append(np.full(len(members), f"{b1} + {b2} at {c1} + {c2}", dtype=object))
    if not rows:
        raise ValueError("no pair of classes has tiles at both centres of any pair of in-domain centres")
    return np.concatenate(rows), np.concatenate(names).astype(str)


class CentreRobustness(TaskFamily):
    name: ClassVar[str] = "centre_robustness"
    title: ClassVar[str] = "medical-centre robustness"
    Params: ClassVar[type[BaseModel]] = CentreRobustnessParams

    @staticmethod
    def scored_splits(params: CentreRobustnessParams, splits: Sequence[str]) -> list[str] | None:
        return None  # the splits are pooled (PathoROB draws its own)

    @staticmethod
    def metrics(params: CentreRobustnessParams) -> dict[str, MetricInfo]:
        info = {"robustness_index": ROBUSTNESS, "knn_balanced_accuracy": SCORE}
        if params.apd is not None:
            info.update({"apd_in_domain": DROP, "apd_out_of_domain": DROP})
        if params.clustering is not None:
            info["clustering_score"] = CLUSTERING
        return info

    def evaluate(self, data: TaskData, params: CentreRobustnessParams) -> Evaluation:
        x, biology, slides, centres, subsets = pooled(data)
        if params.pairs is not None:
            return self.evaluate_paired(x, biology, slides, centres, subsets, params)
        order = slides_together(slides)
        x, biology, slides, centres = x[order], biology[order], slides[order], centres[order]
        subsets = None if subsets is None else subsets[order]
        patches = pooled_patches(data)
        patches = None if patches is None else patches[order]
        inside, outside = domains(centres, subsets, params)
        in_domain = np.flatnonzero(np.isin(centres, inside))
        index_rows = (in_domain if params.index_rows is None
                      else reduced_rows(params.index_rows, slides, patches, biology, centres))
        ri = pathorob.robustness_index(x[index_rows], biology[index_rows], centres[index_rows], slides[index_rows],
                                       max_k=params.max_k, n_resamples=params.bootstrap_resamples)
        metrics = {"robustness_index": summarise([ri.value], ri.interval),
                   "knn_balanced_accuracy": summarise([ri.balanced_accuracy], None)}
        details = {
            "in_domain": inside, "out_of_domain": outside, "k_opt": ri.k_opt, "neighbours": ri.neighbours,
            "chance_robustness_index": round(pathorob.chance_robustness_index(biology[index_rows], centres[index_rows]), 6),
            "robustness_index_curve": [round(v, 6) for v in ri.curve[: max(ri.ks)]],
            "knn": {"k": ri.ks, "balanced_accuracy": [round(a, 6) for a in ri.accuracies]},
            "index_rows": params.index_rows or "in-domain tiles", "index_tiles": len(index_rows),
        }
        if params.apd is not None:
            if not outside:
                raise ValueError("APD needs out-of-domain centres: declare out_of_domain, or set apd: null")
            plans, _ = pathorob.apd_plans(params.apd.schedule, params.apd.base, len(data.class_names),
                                          params.apd.patches_per_slide)
            splits = params.apd.repetitions * len(plans)
            with progress_bar("centre robustness: APD probes (repetition x split)", splits, unit="fits") as advance:
                drop = pathorob.performance_drop(
                    x, biology, centres, inside, outside, data.class_names, base=params.apd.base,
                    patches_per_slide=params.apd.patches_per_slide, repetitions=params.apd.repetitions,
                    progress=lambda: advance(1), schedule=params.apd.schedule, slides=slides,
                    test_cases=None if params.apd.test_cases is None else feasible_test_cases(params.apd.test_cases))
            for key, mean, half, scores in (
                ("apd_in_domain", drop.in_domain, drop.in_domain_ci, drop.in_domain_scores),
                ("apd_out_of_domain", drop.out_of_domain, drop.out_of_domain_ci, drop.out_of_domain_scores),
            ):
                metrics[key] = summarise(scores, (mean - half, mean + half))
            details["apd_accuracy_by_split"] = {
                side: [round(float(np.mean(split)), 6) for split in values] for side, values in drop.accuracies.items()}
        if params.clustering is not None:
            rows = (in_domain if params.clustering.rows is None
                    else reduced_rows(params.clustering.rows, slides, patches, biology, centres))
            clusters = pathorob.clustering_score(
                x[rows], biology[rows], centres[rows], min_k=params.clustering.min_k,
                max_k=params.clustering.max_k, trials=params.clustering.trials)
            scores = [c["score"] for c in clusters.per_combination.values()]
            metrics["clustering_score"] = summarise(scores, None)
            details["clustering"] = {"spread": round(clusters.spread, 6), "combinations": clusters.per_combination,
                                     "rows": params.clustering.rows or "in-domain tiles", "tiles": len(rows)}
        return Evaluation(
            metrics=metrics,
            n_samples={"tiles": len(in_domain), "out_of_domain_tiles": int(np.isin(centres, outside).sum()),
                       "centres": len(inside), "slides": len(set(slides[in_domain]))},
            seeds=[],
            details=details,
        )

    @staticmethod
    def evaluate_paired(x, biology, slides, centres, subsets, params: CentreRobustnessParams) -> Evaluation:
        rows, pairs = pair_subsets(biology, centres, subsets, params)
        ri = pathorob.paired_robustness_index(x[rows], biology[rows], centres[rows], slides[rows], pairs,
                                              max_k=params.max_k, n_resamples=params.bootstrap_resamples)
        chance = pathorob.chance_robustness_index(biology[rows], centres[rows], pairs)
        return Evaluation(
            metrics={"robustness_index": summarise([ri.value], ri.interval),
                     "knn_balanced_accuracy": summarise([ri.balanced_accuracy], None)},
            n_samples={"tiles": len(set(rows.tolist())), "rows": len(rows), "pair_subsets": len(set(pairs)),
                       "centres": len(set(centres[rows])), "slides": len(set(slides[rows]))},
            seeds=[],
            details={"pairs": params.pairs, "k_opt": ri.k_opt, "neighbours": ri.neighbours,
                     "chance_robustness_index": round(chance, 6),
                     "robustness_index_curve": [round(v, 6) for v in ri.curve[: max(ri.ks)]],
                     "knn": {"k": ri.ks, "balanced_accuracy": [round(a, 6) for a in ri.accuracies]}},
        )
