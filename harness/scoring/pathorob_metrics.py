"""Medical-centre robustness metrics, as PathoROB computes them (bifold-pathomics/PathoROB, commit
46594e9, BSD-3-Clause; Kömen et al. 2025, "Towards Robust Foundation Models for Digital Pathology").

Every tile has a biological class, a medical centre and a slide. A representation is robust when
what a tile resembles is its biology, not its centre.

Robustness index (unpaired; PathoROB's camelyon and tolkach_esca setting).
  Embeddings are L2-normalised; every tile queries all tiles by Euclidean distance (= cosine
  order), and neighbours from its own slide are dropped (every row is then cut to the shortest
  row's length m). For its j-th neighbour a tile counts SO (same class, other centre) and OS
  (other class, same centre). RI(k) = sum over tiles of SO in the first k / (SO + OS in the
  first k). k is PathoROB's k_opt: the k in {1, 3, 5, 7, 9, 11, 21, ..., < max_k} (and <= m)
  where a majority vote of the k neighbours (ties to the smaller class index, scipy's mode)
  has the highest balanced accuracy. 1 = neighbours differ from a tile only across centres; a
  random representation scores p(same class) p(other centre) / (that + p(other class)
  p(same centre)) (`chance_robustness_index`).

Paired robustness index (PathoROB's TCGA setting, `paired_robustness_index`).
  The tiles come in subsets of two classes x two centres (its tcga_2x2 table; a tile may sit in
  several). The above runs within each subset; k_opt maximises the balanced accuracy averaged
  over subsets, and RI(k) pools every subset's SO and OS counts.

Average performance drop (APD), two in-domain centres.
  The in-domain tiles of each (centre, class) are cut into slides of `patches_per_slide`
  consecutive tiles. Per repetition the slides of each group are shuffled (Python's `random`,
  seeded as PathoROB seeds it; the order carries over to the next repetition). Split s trains a
  logistic regression on (base - s) slides of the first half of the classes and (base + s) of
  the second half at centre 0, the reverse at centre 1: split 0 is balanced, later splits tie
  class to centre more and more (a shortcut). The next slide's worth of tiles (a share of the
  training count) chooses C from 10^linspace(-8, 4, 15) by balanced accuracy; tiles from slide
  2 x base + 1 on are the in-domain test set, the out-of-domain centres the other. Per
  repetition, APD = mean over s > 0 of (accuracy_s / accuracy_0) - 1; reported: the mean over
  repetitions with a 95% interval t(0.975, df = repetitions) x standard error (PathoROB's
  aggregate, which for one dataset needs no Masson-Loftus correction). 0 = no drop.
  PathoROB's TCGA schedule (`schedule="four_by_four"`, `four_by_four_schedule`): four in-domain
  centres x four classes, in the order given; split s trains centre i on s + 2 slides of class i
  and fewer and fewer of the others (7 splits, at most 8 training slides; test from slide 9 on).

Clustering score.
  For every pair of classes x pair of centres whose four groups exist, the tiles of the four
  groups (in that order: b1-c1, b1-c2, b2-c1, b2-c2) are L2-normalised; K is the silhouette
  (cosine) maximiser over K in [min_k, max_k] of k-means (random init, 20 starts, seed 1337);
  then `trials` k-means (5 starts, seeds 1337 + t) give ARI(class) - ARI(centre) each. Reported:
  the mean over combinations of the per-combination mean (and the mean of the per-combination
  standard deviations). 1 = clusters are classes; negative = clusters are centres.

Tests compare all three with values PathoROB's own code printed on the same arrays
(tests/assets/pathorob-reference/).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import combinations, product
from typing import Sequence

import numpy as np

from harness.scoring.bootstrap import N_RESAMPLES, BootstrapInterval, percentile_interval, resample_weights

C_GRID = 10.0 ** np.linspace(-8, 4, 15)  # PathoROB's logistic-regression C search


def k_grid(max_k: int) -> list[int]:
    """PathoROB's candidate k values: 1, 3, 5, 7, 9, then 11, 21, ... below max_k."""
    return [1, 3, 5, 7, 9] + [int(k) for k in np.arange(11, max_k, 10)]


def _ordinal(values: Sequence) -> np.ndarray:
    """Class indices in sorted order of the distinct values (sklearn's LabelEncoder)."""
    return np.unique(np.asarray(values), return_inverse=True)[1].reshape(-1)


# --- robustness index ------------------------------------------------------------------------
@dataclass
class RobustnessIndex:
    value: float  # RI at k_opt
    k_opt: int
    balanced_accuracy: float  # of the k_opt majority vote (what chose k_opt)
    ks: list[int]  # the candidate k values scored
    accuracies: list[float]  # their balanced accuracies
    curve: list[float]  # RI(k) for k = 1 .. m
    interval: BootstrapInterval | None = None  # tiles resampled, RI at k_opt
    neighbours: int = 0  # m: neighbours per tile from other slides


def neighbours_from_other_slides(embeddings: np.ndarray, slides: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Indices of each tile's nearest tiles (L2 after L2-normalisation), own slide dropped, every
    row cut to the shortest row (PathoROB's filter_out_query_case_from_neighbors)."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import Normalizer

    x = Normalizer(norm="l2").fit_transform(np.asarray(embeddings))
    slides = np.asarray(slides)
    largest_slide = int(np.max(np.unique(slides, return_counts=True)[1]))
    wanted = min(n_neighbours + largest_slide, len(x))  # enough left after dropping the own slide
    index = NearestNeighbors(n_neighbors=wanted).fit(x).kneighbors(x, return_distance=False)
    rows = [row[slides[row] != slides[i]] for i, row in enumerate(index)]
    shortest = min(len(row) for row in rows)
    if shortest == 0:
        raise ValueError("a tile has no neighbour outside its own slide: every tile sits on one slide")
    return np.stack([row[:shortest] for row in rows])


def robustness_index(
    embeddings: np.ndarray,
    biology: Sequence,
    centres: Sequence,
    slides: Sequence,
    max_k: int = 600,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> RobustnessIndex:
    y = _ordinal(biology)
    centre = np.asarray(centres)
    if len(np.unique(y)) < 2 or len(np.unique(centre)) < 2:
        raise ValueError("the robustness index needs at least two classes and two centres")
    n = len(y)
    candidates = [k for k in k_grid(max_k) if k <= n]
    neighbours = neighbours_from_other_slides(embeddings, np.asarray(slides), candidates[-1])
    m = neighbours.shape[1]
    ks = [k for k in candidates if k <= m]
    accuracies = _vote_accuracies(y, neighbours, ks)
    k_opt = ks[int(np.argmax(accuracies))]
    so, os_ = _cumulative_counts(y, centre, neighbours)
    return _at_k_opt(so, os_, k_opt, ks, accuracies, n_resamples, seed)


def paired_robustness_index(
    embeddings: np.ndarray,
    biology: Sequence,
    centres: Sequence,
    slides: Sequence,
    pairs: Sequence,
    max_k: int = 1200,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> RobustnessIndex:
    """PathoROB's paired evaluation (its TCGA setting, robustness_index_paired.py): each value of
    `pairs` is one subset of two classes x two centres, and neighbours are looked up within it.
    Per subset (in sorted order): candidate k <= its tiles, the balanced accuracy of the vote of
    min(k, m) neighbours (m: its neighbours from other slides). k_opt: the argmax of the mean
    accuracy over subsets, each row cut to the shortest, with k read off the last subset's
    min(k, m). RI(k) pools every subset's SO and OS counts, cut to the smallest m."""
    x = np.asarray(embeddings)
    biology, centre, slides, pairs = (np.asarray(v).astype(str) for v in (biology, centres, slides, pairs))
    rows, so_parts, os_parts, effective = [], [], [], []
    for pair in np.unique(pairs):
        inside = np.flatnonzero(pairs == pair)
        y = _ordinal(biology[inside])
        if len(np.unique(y)) < 2 or len(np.unique(centre[inside])) < 2:
            raise ValueError(f"pair subset '{pair}' needs two classes and two centres; it has "
                             f"{sorted(set(biology[inside]))} at {sorted(set(centre[inside]))}")
        candidates = [k for k in k_grid(max_k) if k <= len(inside)]
        neighbours = neighbours_from_other_slides(x[inside], slides[inside], candidates[-1])
        m = neighbours.shape[1]
        effective = [min(k, m) for k in candidates]  # PathoROB keeps the last subset's
        rows.append(_vote_accuracies(y, neighbours, effective))
        so, os_ = _cumulative_counts(y, centre[inside], neighbours)
        so_parts.append(so)
        os_parts.append(os_)
    width = min(len(row) for row in rows + [effective])
    accuracies = np.mean([row[:width] for row in rows], axis=0)
    ks = effective[:width]
    k_opt = ks[int(np.argmax(accuracies))]
    shortest = min(part.shape[1] for part in so_parts)
    if k_opt > shortest:
        raise ValueError(f"k_opt {k_opt} exceeds the fewest neighbours a pair subset has ({shortest}): the "
                         "subsets differ too much in size")
    so = np.concatenate([part[:, :shortest] for part in so_parts])
    os_ = np.concatenate([part[:, :shortest] for part in os_parts])
    return _at_k_opt(so, os_, k_opt, ks, [float(a) for a in accuracies], n_resamples, seed)


def _vote_accuracies(y: np.ndarray, neighbours: np.ndarray, ks: Sequence[int]) -> list[float]:
    """Balanced accuracy of the majority vote of the first k neighbours (ties to the smaller class
    index, scipy's mode), per k."""
    from scipy.stats import mode
    from sklearn.metrics import balanced_accuracy_score

    return [float(balanced_accuracy_score(y, mode(y[neighbours[:, :k]], axis=1).mode.reshape(-1))) for k in ks]


def _cumulative_counts(y: np.ndarray, centre: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per tile, how many of its first j neighbours share its class at another centre (SO) and its
    centre with another class (OS), for j = 1 .. m."""
    same_class = y[neighbours] == y[:, None]
    same_centre = centre[neighbours] == centre[:, None]
    return np.cumsum(same_class & ~same_centre, axis=1), np.cumsum(~same_class & same_centre, axis=1)


def _at_k_opt(so: np.ndarray, os_: np.ndarray, k_opt: int, ks: list[int], accuracies: list[float],
              n_resamples: int, seed: int) -> RobustnessIndex:
    """RI(k) from the pooled counts, its value at k_opt and a bootstrap interval over tiles."""
    so_total, os_total = so.sum(axis=0).astype(np.float64), os_.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = so_total / (so_total + os_total)
    so_k, os_k = so[:, k_opt - 1].astype(np.float64), os_[:, k_opt - 1].astype(np.float64)
    replicates = []
    for weights in resample_weights(len(so), n_resamples, seed):
        a, b = weights @ so_k, weights @ os_k
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates.append(a / (a + b))
    replicates = np.concatenate(replicates) if replicates else np.array([])
    interval = BootstrapInterval(*percentile_interval(replicates), replicates=replicates) if n_resamples else None
    return RobustnessIndex(
        value=float(curve[k_opt - 1]), k_opt=int(k_opt), balanced_accuracy=float(accuracies[ks.index(k_opt)]),
        ks=list(ks), accuracies=list(accuracies), curve=[float(v) for v in curve], interval=interval,
        neighbours=int(so.shape[1]),
    )


def chance_robustness_index(biology: Sequence, centres: Sequence, pairs: Sequence | None = None) -> float:
    """The robustness index of neighbours drawn at random (the expected value of a noise embedding):
    p(same class, other centre) / (that + p(other class, same centre)), over ordered pairs of tiles.
    With `pairs`, neighbours are drawn within a tile's subset, and each tile weighs the same."""
    biology, centres = np.asarray(biology), np.asarray(centres)
    groups = np.zeros(len(biology), dtype=int) if pairs is None else np.unique(np.asarray(pairs), return_inverse=True)[1]
    so = os_ = 0.0
    for group in np.unique(groups):
        inside = groups == group
        # from the (class, centre) counts, not the n x n pairs (20,400 Camelyon tiles would need gigabytes)
        _, b = np.unique(biology[inside], return_inverse=True)
        _, c = np.unique(centres[inside], return_inverse=True)
        counts = np.zeros((b.max() + 1, c.max() + 1), dtype=np.float64)
        np.add.at(counts, (b.reshape(-1), c.reshape(-1)), 1)
        squares = (counts ** 2).sum()
        others = max(int(inside.sum()) - 1, 1)  # a tile's possible neighbours in its subset
        so += ((counts.sum(axis=1) ** 2).sum() - squares) / others  # same class, other centre (ordered pairs)
        os_ += ((counts.sum(axis=0) ** 2).sum() - squares) / others  # other class, same centre
    return float(so / (so + os_))


# --- average performance drop ------------------------------------------------------------------
def two_centre_schedule(split: int, base: int, n_classes: int, patches_per_slide: int) -> tuple[list[tuple[int, int, int]], int]:
    """(centre, class, training tiles) of split `split`, and the most training slides of a group.
    Centre 0 trains on (base - split) slides of the first half of the classes and (base + split)
    of the second half; centre 1 on the reverse (PathoROB: camelyon base 7, tolkach_esca base 3)."""
    half = n_classes // 2
    plan = []
    for centre in (0, 1):
        for label in range(n_classes):
            fewer = (label < half) == (centre == 0)
            slides = base - split if fewer else base + split
            plan.append((centre, label, slides * patches_per_slide))
    return sorted(plan), 2 * base


def four_by_four_schedule(split: int, patches_per_slide: int) -> tuple[list[tuple[int, int, int]], int]:
    """PathoROB's TCGA schedule (4 in-domain centres x 4 classes, splits 0..6): centre i trains on
    split + 2 slides of class i (the diagonal), on 2, 1, 2, 1, 0, 1, 0 slides of class 3 - i, and on
    2, 2, 1, 1, 1, 0, 0 of the others; most training slides of a group: 8."""
    plan = []
    for centre in range(4):
        for label in range(4):
            if centre == label:
                slides = split + 2
            elif centre + label == 3:
                slides = 1 if split % 2 == 1 else (2 if split < 3 else 0)
            else:
                slides = 2 if split < 2 else (1 if split < 5 else 0)
            plan.append((centre, label, slides * patches_per_slide))
    return sorted(plan), 8


def apd_plans(schedule: str, base: int, n_classes: int, patches_per_slide: int) -> tuple[list[list[tuple[int, int, int]]], int]:
    """Every split's (centre, class, training tiles), and the most training slides of a group:
    "two_centre" (base + 1 splits; PathoROB camelyon, tolkach_esca) or "four_by_four" (7; tcga)."""
    if schedule == "two_centre":
        plans = [two_centre_schedule(split, base, n_classes, patches_per_slide) for split in range(base + 1)]
    elif schedule == "four_by_four":
        plans = [four_by_four_schedule(split, patches_per_slide) for split in range(7)]
    else:
        raise ValueError(f"unknown APD schedule '{schedule}'; one of two_centre, four_by_four")
    return [plan for plan, _ in plans], plans[0][1]


@dataclass
class PerformanceDrop:
    in_domain: float  # APD, mean over repetitions
    out_of_domain: float
    in_domain_ci: float  # half-width of the 95% interval
    out_of_domain_ci: float
    in_domain_scores: list[float]  # one APD per repetition
    out_of_domain_scores: list[float]
    accuracies: dict[str, list[list[float]]] = field(default_factory=dict)  # "in_domain"/"out_of_domain": [split][rep]
    best_c: list[list[float]] = field(default_factory=list)  # [split][rep]


def _fit_logistic(train_x, train_y, val_x, val_y, tests):
    """PathoROB's train_logistic_regression: C by validation balanced accuracy, refit, score tests."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        scored = []
        for c in C_GRID:
            model = LogisticRegression(C=c, random_state=0).fit(train_x, train_y)
            scored.append((c, balanced_accuracy_score(val_y, model.predict(val_x))))
        best_c, _ = max(scored, key=lambda pair: pair[1])
        final = LogisticRegression(C=best_c).fit(train_x, train_y)
        return float(best_c), [float(balanced_accuracy_score(y, final.predict(x))) for x, y in tests]


def apd_scores(accuracies: Sequence[Sequence[float]]) -> np.ndarray:
    """Per repetition: mean over splits s > 0 of accuracy_s / accuracy_0, minus 1."""
    scores = np.asarray(accuracies, dtype=np.float64)  # (splits, repetitions)
    return (scores[1:] / scores[0]).mean(axis=0) - 1


def apd_interval(scores: Sequence[float]) -> float:
    """Half-width of PathoROB's 95% interval: t(0.975, df = n) x standard error (ddof 1)."""
    from scipy import stats

    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, df=len(scores)) * scores.std(ddof=1) / np.sqrt(len(scores)))


def performance_drop(
    embeddings: np.ndarray,
    biology: Sequence,
    centres: Sequence,
    in_domain: Sequence[str],
    out_of_domain: Sequence[str],
    classes: Sequence[str],
    base: int,
    patches_per_slide: int,
    repetitions: int = 20,
    seed: int = 1000,
    progress=None,
    schedule: str = "two_centre",
    slides: Sequence | None = None,
    test_cases: dict[str, list[list[str]]] | None = None,
) -> PerformanceDrop:
    """APD under PathoROB's two-centre (`base`) or 4 x 4 schedule. Rows are read in the given order
    (PathoROB reads its metadata file's order): the i-th `patches_per_slide` tiles of a group are
    its i-th slide.

    `test_cases` (PathoROB's Tolkach ESCA constraint, its tolkach_splits.json): per in-domain centre,
    feasible lists of test cases (a case = `slides`' value). Each repetition draws one list per
    centre, and after the shuffle the first chunk of each listed case that a group holds moves to
    the group's end, the test region. PathoROB moves them in the order of a Python set; here they
    keep their shuffled order. Within a repetition that order does not matter (on PathoROB's data at
    most two slides per group move, and the last two make the test region), so the first repetition
    equals PathoROB's; but each repetition shuffles the order the previous one left, so PathoROB's
    later repetitions change with PYTHONHASHSEED, and ours are the same on every run."""
    plans, most = apd_plans(schedule, base, len(classes), patches_per_slide)
    if schedule == "two_centre" and len(in_domain) != 2:
        raise ValueError(f"the two-centre schedule needs two in-domain centres, got {list(in_domain)}")
    if schedule == "four_by_four" and (len(in_domain) != 4 or len(classes) != 4):
        raise ValueError(f"the 4 x 4 schedule needs four in-domain centres and four classes, got "
                         f"{list(in_domain)} and {list(classes)}")
    biology, centres = np.asarray(biology), np.asarray(centres)
    x = np.asarray(embeddings)
    if test_cases is not None:
        if slides is None:
            raise ValueError("case-constrained APD needs each tile's case (its slide)")
        missing = [c for c in in_domain if not test_cases.get(c)]
        if missing:
            raise ValueError(f"case-constrained APD has no test-case lists for the in-domain centre {missing[0]!r} "
                             f"(it has: {', '.join(sorted(test_cases))})")
    cases = np.asarray(slides if slides is not None else np.full(len(biology), ""), dtype=str)
    class_index = {name: i for i, name in enumerate(classes)}
    groups = [[[] for _ in classes] for _ in in_domain]
    for row, (label, centre) in enumerate(zip(biology, centres)):
        if centre in in_domain:
            groups[list(in_domain).index(centre)][class_index[label]].append((x[row], class_index[label], cases[row]))
    ood = [(x[row], class_index[label], "") for row, (label, centre) in enumerate(zip(biology, centres))
           if centre in out_of_domain]
    needed = (most + 2) * patches_per_slide  # training slides, one validation slide, one test slide
    short = [(in_domain[i], classes[j], len(g)) for i, row in enumerate(groups) for j, g in enumerate(row)
             if len(g) < needed]
    if short:
        centre, label, count = short[0]
        what = f"APD base {base}" if schedule == "two_centre" else "the 4 x 4 APD schedule"
        raise ValueError(f"{what} needs {needed} tiles in every (centre, class) group; "
                         f"{centre}/{label} has {count}")
    if not ood:
        raise ValueError(f"no tile from the out-of-domain centres {list(out_of_domain)}")
    for split, plan in enumerate(plans):  # validation takes count / most tiles of each group: none when slides are tiny
        if sum(int(count / most) for _, _, count in plan) == 0:
            raise ValueError(f"APD split {split} has no validation tiles with {patches_per_slide} tiles per "
                             f"slide (each group gives training tiles / {most}): raise patches_per_slide")
    ood_x, ood_y, _ = zip(*ood)

    random.seed(seed)
    draws = random.sample(range(0, 10000), repetitions)
    n_splits = len(plans)
    accuracy = {"in_domain": [[] for _ in range(n_splits)], "out_of_domain": [[] for _ in range(n_splits)]}
    best_c = [[] for _ in range(n_splits)]
    pps = patches_per_slide
    for draw in draws:
        random.seed(draw)
        # PathoROB draws the feasible split of each centre before any shuffle (its randint calls)
        held_out = (None if test_cases is None else
                    [set(test_cases[c][random.randint(0, len(test_cases[c]) - 1)]) for c in in_domain])
        for i in range(len(in_domain)):
            for j in range(len(classes)):
                chunks = [groups[i][j][k:k + pps] for k in range(0, len(groups[i][j]), pps)]
                random.shuffle(chunks)
                if held_out is not None:
                    chunks = _test_cases_last(chunks, held_out[i])
                groups[i][j] = [tile for chunk in chunks for tile in chunk]
        for split, plan in enumerate(plans):
            train = [t for i, j, count in plan for t in groups[i][j][:count]]
            val = [t for i, j, count in plan for t in groups[i][j][count:count + int(count / most)]]
            first_test = (most + 1) * pps
            test = [t for i in range(len(in_domain)) for j in range(len(classes)) for t in groups[i][j][first_test:]]
            train_x, train_y, _ = zip(*train)
            val_x, val_y, _ = zip(*val)
            test_x, test_y, _ = zip(*test)
            c, (id_acc, ood_acc) = _fit_logistic(train_x, train_y, val_x, val_y,
                                                 [(test_x, test_y), (ood_x, ood_y)])
            accuracy["in_domain"][split].append(id_acc)
            accuracy["out_of_domain"][split].append(ood_acc)
            best_c[split].append(c)
            if progress is not None:
                progress()
    id_scores, ood_scores = apd_scores(accuracy["in_domain"]), apd_scores(accuracy["out_of_domain"])
    return PerformanceDrop(
        in_domain=float(id_scores.mean()), out_of_domain=float(ood_scores.mean()),
        in_domain_ci=apd_interval(id_scores), out_of_domain_ci=apd_interval(ood_scores),
        in_domain_scores=[float(s) for s in id_scores], out_of_domain_scores=[float(s) for s in ood_scores],
        accuracies=accuracy, best_c=best_c,
    )


def _test_cases_last(chunks: list, cases: set) -> list:
    """The first chunk of each case in `cases` moved to the end, in the chunks' order."""
    first: dict[str, int] = {}
    for k, chunk in enumerate(chunks):
        first.setdefault(chunk[0][2], k)
    moved = sorted(first[c] for c in cases if c in first)
    return [c for k, c in enumerate(chunks) if k not in moved] + [chunks[k] for k in moved]


# --- clustering score ------------------------------------------------------------------------
@dataclass
class ClusteringScore:
    value: float  # mean over combinations of the mean over trials of ARI(class) - ARI(centre)
    spread: float  # mean over combinations of the standard deviation over trials
    per_combination: dict[str, dict[str, float]]  # "b1-b2-c1-c2" -> K, score, ari_class, ari_centre


def _first_seen(values: np.ndarray) -> list:
    _, first = np.unique(values, return_index=True)
    return [values[i] for i in sorted(first)]


def clustering_score(
    embeddings: np.ndarray,
    biology: Sequence,
    centres: Sequence,
    min_k: int = 2,
    max_k: int = 30,
    trials: int = 50,
    fixed_k: int | None = None,
    progress=None,
) -> ClusteringScore:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    x = np.asarray(embeddings)
    biology, centres = np.asarray(biology), np.asarray(centres)
    rows = {(b, c): np.flatnonzero((biology == b) & (centres == c)) for b in set(biology) for c in set(centres)}
    per_combination = {}
    for (b1, b2), (c1, c2) in product(combinations(_first_seen(biology), 2), combinations(_first_seen(centres), 2)):
        parts = [rows[(b1, c1)], rows[(b1, c2)], rows[(b2, c1)], rows[(b2, c2)]]
        if any(len(p) == 0 for p in parts):
            continue
        order = np.concatenate(parts)
        z = x[order]
        z = z / np.sqrt((z ** 2).sum(axis=1))[:, None]
        if fixed_k is None:
            ks = [k for k in range(min_k, max_k + 1) if k < len(z)]  # silhouette needs k < n
            silhouettes = [silhouette_score(z, KMeans(n_clusters=k, random_state=1337, init="random", n_init=20)
                                            .fit(z).labels_, metric="cosine") for k in ks]
            k = ks[int(np.argmax(silhouettes))]
        else:
            k = fixed_k
        scores, ari_b, ari_c = [], [], []
        for t in range(trials):
            labels = KMeans(n_clusters=k, random_state=1337 + t, n_init=5, init="random").fit(z).labels_
            ari_b.append(adjusted_rand_score(biology[order], labels))
            ari_c.append(adjusted_rand_score(centres[order], labels))
            scores.append(ari_b[-1] - ari_c[-1])
        per_combination[f"{b1}-{b2}-{c1}-{c2}"] = {
            "K": int(k), "score": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)) if trials > 1 else 0.0,
            "ari_class": float(np.mean(ari_b)), "ari_centre": float(np.mean(ari_c)),
        }
        if progress is not None:
            progress()
    if not per_combination:
        raise ValueError("no pair of classes is present at any pair of centres")
    return ClusteringScore(
        value=float(np.mean([c["score"] for c in per_combination.values()])),
        spread=float(np.mean([c["std"] for c in per_combination.values()])),
        per_combination=per_combination,
    )
