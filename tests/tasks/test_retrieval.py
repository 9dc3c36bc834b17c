import numpy as np

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.retrieval import Retrieval, RetrievalParams


def test_retrieval_metrics_on_hand_made_neighbours():
    # database: two classes on two axes; queries on the same axes, one with a wrong-class neighbour
    database = SplitArrays(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32), np.array([0, 0, 1, 1]))
    queries = SplitArrays(np.array([[1, 0.05], [0.6, 0.4]], np.float32), np.array([0, 1]))
    params = RetrievalParams(ks=[1, 3], bootstrap_resamples=50)
    result = Retrieval().evaluate(TaskData({"train": database, "test": queries}, ["a", "b"]), params)
    # query 0: ranks 0,0,1 -> acc@1 1, map@3 1; query 1 (class 1): ranks 0,0,1 -> acc@1 0, acc@3 1, ap@3 1/3
    assert result.metrics["acc@1"].mean == 0.5
    assert result.metrics["acc@3"].mean == 1.0
    assert np.isclose(result.metrics["map@3"].mean, (1.0 + 1 / 3) / 2)
    assert result.metrics["mv@3"].mean == 0.5
    assert result.details["distance"] == "cosine" and result.metrics["acc@1"].std == 0.0


def test_perfect_embeddings_score_one_everywhere():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    emb = np.eye(3, dtype=np.float32)[labels] + 0.01 * rng.normal(size=(60, 3)).astype(np.float32)
    task = TaskData({"train": SplitArrays(emb[::2], labels[::2]), "test": SplitArrays(emb[1::2], labels[1::2])},
                    ["a", "b", "c"])
    result = Retrieval().evaluate(task, RetrievalParams(bootstrap_resamples=50))
    assert all(metric.mean == 1.0 for metric in result.metrics.values())


def test_a_k_beyond_the_database_is_refused_not_relabelled():
    """The top 10 of a 4-item database is its top 4: it was reported as map@10."""
    import pytest

    database = SplitArrays(np.eye(4, dtype=np.float32), np.array([0, 0, 1, 1]))
    queries = SplitArrays(np.eye(4, dtype=np.float32)[:2], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ks \[5, 10\] exceed the 4 items of the database split 'train': lower the "
                                         "task's ks"):
        Retrieval().evaluate(TaskData({"train": database, "test": queries}, ["a", "b"]),
                             RetrievalParams(ks=[1, 5, 10], bootstrap_resamples=50))
