"""The stain_robustness family: plismbench metrics over slide pairs, and the cross-domain drop."""

import numpy as np
import pytest

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.stain_robustness import StainRobustness, StainRobustnessParams
from tests.support.plism_reference import brute_force

STAININGS, SCANNERS = ("he1", "he2"), ("s1", "s2", "s3")


def slides(embed) -> TaskData:
    """embed(staining index, scanner index) -> (n, d) embeddings (labels: tile index mod 3)."""
    splits = {}
    for a, stain in enumerate(STAININGS):
        for b, scanner in enumerate(SCANNERS):
            x = embed(a, b)
            splits[f"{stain}@{scanner}"] = SplitArrays(x.astype(np.float32), np.arange(len(x)) % 3)
    return TaskData(splits, ["a", "b", "c"])


def test_group_medians_and_score_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 8))
    shifts = {key: rng.normal(scale=0.8, size=(60, 8)) for key in np.ndindex(2, 3)}
    data = slides(lambda a, b: base + shifts[(a, b)])
    result = StainRobustness().evaluate(data, StainRobustnessParams(cross_domain=False))

    names = list(data.splits)
    domain = {n: tuple(n.split("@")) for n in names}
    groups = {"inter_scanner": [], "inter_staining": [], "both": [], "all": []}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            (si, ci), (sj, cj) = domain[names[i]], domain[names[j]]
            metrics = brute_force(data.splits[names[i]].embeddings, data.splits[names[j]].embeddings)
            group = "inter_scanner" if si == sj else "inter_staining" if ci == cj else "both"
            groups[group].append(metrics)
            groups["all"].append(metrics)
    assert len(groups["inter_scanner"]) == 6 and len(groups["inter_staining"]) == 3 and len(groups["both"]) == 6
    for group, pairs in groups.items():
        for metric in ("cosine", "top_1", "top_10"):
            expected = np.median([p[metric] for p in pairs])
            assert result.metrics[f"{metric}_{group}"].mean == pytest.approx(expected, abs=1e-6)
    score = np.mean([np.median([p["cosine"] for p in groups["all"]])]
                    + [np.median([p["top_10"] for p in groups[g]]) for g in ("inter_scanner", "inter_staining", "both")])
    assert result.metrics["plism_score"].mean == pytest.approx(score, abs=1e-6)
    assert result.n_samples == {"slides": 6, "tiles_per_slide": 60, "pairs": 15}


def test_domain_invariant_embeddings_score_one_and_unrelated_ones_chance():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 16))
    invariant = StainRobustness().evaluate(slides(lambda a, b: base), StainRobustnessParams(cross_domain=False))
    assert invariant.metrics["plism_score"].mean == pytest.approx(1.0)
    unrelated = StainRobustness().evaluate(slides(lambda a, b: rng.normal(size=(300, 16))),
                                           StainRobustnessParams(cross_domain=False))
    assert unrelated.metrics["top_10_all"].mean == pytest.approx(10 / 599, abs=0.01)


def test_cross_domain_drop_measures_a_domain_shift():
    rng = np.random.default_rng(2)
    n = 240
    labels = np.arange(n) % 3
    signal = np.eye(3)[labels] * 3.0

    def embed(a, b, shift):
        # every domain but the first moves class 0 onto class 1's direction by `shift`
        x = signal + rng.normal(scale=0.5, size=(n, 3))
        if (a, b) != (0, 0):
            x = x + shift * np.outer(labels == 0, [-1.0, 1.0, 0.0])
        return x

    params = StainRobustnessParams(seeds=[0], max_steps=2000, patience=500, lr=1e-2)
    stable = StainRobustness().evaluate(slides(lambda a, b: embed(a, b, 0.0)), params)
    shifted = StainRobustness().evaluate(slides(lambda a, b: embed(a, b, 3.0)), params)
    assert stable.metrics["in_domain_balanced_accuracy"].mean > 0.9
    assert abs(stable.metrics["cross_domain_drop"].mean) < 0.05
    assert shifted.metrics["cross_domain_drop"].mean > 0.2
    details = shifted.details["cross_domain"]
    assert details["train_domain"] == "he1@s1" and details["test_tiles_per_domain"] == n // 2


def test_a_slide_name_outside_the_domain_pattern_is_named():
    data = slides(lambda a, b: np.ones((4, 2)))
    data.splits["odd-slide"] = data.splits.pop("he1@s1")
    with pytest.raises(ValueError, match="odd-slide"):
        StainRobustness().evaluate(data, StainRobustnessParams(cross_domain=False))


def test_cross_domain_probe_on_small_slides_keeps_a_validation_tile_per_class():
    """100 tiles of 6 classes per slide: 10% of the 50 training tiles would be 5 validation tiles,
    fewer than the classes, which a stratified split refuses; the split keeps one per class."""
    from harness.tasks.stain_robustness import cross_domain_drop

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 2)[np.arange(100) % 12]  # every class among the even (training) tiles
    centres = rng.standard_normal((6, 8)) * 3
    splits = {f"s{d}@x": SplitArrays((centres[labels] + rng.standard_normal((100, 8))).astype(np.float32), labels)
              for d in range(3)}
    metrics, details = cross_domain_drop(splits, StainRobustnessParams(seeds=[0], max_steps=300, patience=100))
    assert details["train_tiles"] == 44 and details["test_tiles_per_domain"] == 50
    assert metrics["in_domain_balanced_accuracy"].mean > 0.4  # chance: 1/6


def test_cross_domain_probe_on_too_few_tiles_is_one_line_naming_the_class():
    """A class with one tile among the even (training) tile indices: the stratified hold-out cannot
    keep it on both sides. scikit-learn said 'Classes with too few members are: [0, 1]' (indices,
    no word of the hold-out); the message names the class, the slide and what to change."""
    from harness.tasks.stain_robustness import cross_domain_drop

    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2])  # even indices: 0, 1, 2, 2, 1, 2 -> class 0 once
    splits = {f"s{d}@x": SplitArrays(np.random.default_rng(d).standard_normal((12, 4)).astype(np.float32), labels)
              for d in range(2)}
    with pytest.raises(ValueError) as error:
        cross_domain_drop(splits, StainRobustnessParams(seeds=[0], max_steps=50), ["tumour", "stroma", "fat"])
    message = str(error.value)
    assert "slide 's0@x' has one tile of class 'tumour' among its 6 even-indexed tiles" in message
    assert "cross_domain: false" in message and "\n" not in message
