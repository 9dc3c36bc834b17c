"""plismbench metrics against a brute-force reference (full matrix, argsort) on small arrays."""

import numpy as np
import pytest

from tests.support.plism_reference import brute_force
from harness.scoring.plism_metrics import leaderboard_score, pair_groups, pair_metrics, summarise_groups


@pytest.mark.parametrize("noise", [0.1, 0.5, 2.0])
def test_pair_metrics_match_brute_force_in_chunks(noise):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(70, 16))
    b = a + noise * rng.normal(size=a.shape)
    ours = pair_metrics(a, b, chunk_size=17)
    reference = brute_force(a, b)
    assert ours.keys() == reference.keys()
    for key in ours:
        assert ours[key] == pytest.approx(reference[key], abs=1e-6)


def test_identical_slides_score_one_and_independent_slides_score_chance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 32))
    same = pair_metrics(a, a.copy())
    assert same["cosine"] == pytest.approx(1.0) and same["top_1"] == 1.0
    noise = pair_metrics(a, rng.normal(size=(500, 32)))
    assert noise["top_10"] == pytest.approx(10 / 999, abs=0.01)  # chance: k of the 2n - 1 others


def test_pair_groups():
    domains = [("he1", "s1"), ("he1", "s2"), ("he2", "s1"), ("he2", "s2")]
    groups = pair_groups(domains)
    assert groups["inter_scanner"] == [(0, 1), (2, 3)]
    assert groups["inter_staining"] == [(0, 2), (1, 3)]
    assert groups["both"] == [(0, 3), (1, 2)]
    assert len(groups["all"]) == 6


def test_summary_and_leaderboard_score():
    domains = [("he1", "s1"), ("he1", "s2"), ("he2", "s1"), ("he2", "s2")]
    groups = pair_groups(domains)
    per_pair = {pair: {"cosine": 0.5 + 0.1 * i, "top_10": 0.1 * i} for i, pair in enumerate(groups["all"])}
    summary = summarise_groups(per_pair, groups)
    assert summary["inter_scanner"]["top_10"]["median"] == pytest.approx(np.median([per_pair[(0, 1)]["top_10"],
                                                                                   per_pair[(2, 3)]["top_10"]]))
    expected = np.mean([np.median([v["cosine"] for v in per_pair.values()]),
                        summary["inter_scanner"]["top_10"]["median"], summary["inter_staining"]["top_10"]["median"],
                        summary["both"]["top_10"]["median"]])
    assert leaderboard_score(summary) == pytest.approx(expected)


def test_all_pairs_equal_each_pair_computed_alone():
    """Within-slide similarities computed once per slide and the cross block once per pair give
    each pair's pooled-query metrics (five slides, all ten pairs, chunks that do not divide n)."""
    from harness.scoring.plism_metrics import all_pair_metrics

    rng = np.random.default_rng(3)
    base = rng.normal(size=(53, 12))
    slides = [base + noise * rng.normal(size=base.shape) for noise in (0.2, 0.5, 0.8, 1.5, 3.0)]
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    together = all_pair_metrics(slides, pairs, chunk_size=16)
    assert set(together) == set(pairs)
    for i, j in pairs:
        alone = pair_metrics(slides[i], slides[j], chunk_size=16)
        assert together[(i, j)].keys() == alone.keys()
        for key in alone:
            assert together[(i, j)][key] == pytest.approx(alone[key], abs=1e-6), (i, j, key)
    assert together[(0, 1)]["top_10"] > together[(3, 4)]["top_10"]  # closer slides retrieve their twins



def test_the_torch_path_counts_what_numpy_counts():
    """all_pair_metrics with device= (what a CUDA run uses) runs the same counts in torch: on the
    CPU here, equal to the numpy path on every pair and metric, chunks that do not divide n."""
    from harness.scoring.plism_metrics import all_pair_metrics

    rng = np.random.default_rng(4)
    base = rng.normal(size=(61, 10))
    slides = [base + noise * rng.normal(size=base.shape) for noise in (0.3, 0.7, 1.2, 2.5)]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    on_numpy = all_pair_metrics(slides, pairs, chunk_size=13)
    on_torch = all_pair_metrics(slides, pairs, chunk_size=13, device="cpu")
    assert on_torch.keys() == on_numpy.keys()
    for pair in pairs:
        for key, value in on_numpy[pair].items():
            assert on_torch[pair][key] == pytest.approx(value, abs=1e-6), (pair, key)
