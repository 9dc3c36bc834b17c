import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.transform_invariance import TransformInvariance, TransformInvarianceParams


def test_per_transform_cosine_matches_sklearn():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(50, 12))
    splits = {"clean": SplitArrays(clean, None), "jpeg": SplitArrays(clean + 0.1 * rng.normal(size=clean.shape), None),
              "rot90": SplitArrays(rng.normal(size=clean.shape), None)}
    result = TransformInvariance().evaluate(TaskData(splits, []), TransformInvarianceParams(bootstrap_resamples=100))
    expected = {name: np.diag(cosine_similarity(clean, splits[name].embeddings)).mean() for name in ("jpeg", "rot90")}
    assert result.metrics["cosine_jpeg"].mean == pytest.approx(expected["jpeg"])
    assert result.metrics["cosine_rot90"].mean == pytest.approx(expected["rot90"])
    assert result.metrics["mean_cosine"].mean == pytest.approx(np.mean(list(expected.values())))
    low, high = result.metrics["cosine_jpeg"].ci95
    assert low <= expected["jpeg"] <= high
    assert result.metrics["cosine_jpeg"].mean > 0.9 and abs(result.metrics["cosine_rot90"].mean) < 0.2


def test_missing_clean_split_is_an_error():
    with pytest.raises(ValueError, match="clean"):
        TransformInvariance().evaluate(TaskData({"jpeg": SplitArrays(np.ones((2, 2)), None)}, []),
                                       TransformInvarianceParams())
