import numpy as np
import pytest

from harness.errors import HarnessError
from harness.evaluation import SplitArrays, TaskData
from harness.sources.base import check_text_records
from harness.tasks.vqa import VisualQuestionAnswering, VqaParams, majority_answers

QUESTIONS = {"colour": np.array([1.0, 0.0]), "shape": np.array([0.0, 1.0])}


def split(n: int, informative: bool, seed: int) -> SplitArrays:
    """Images with a hidden colour bit and shape bit; two questions about them."""
    rng = np.random.default_rng(seed)
    colour, shape = rng.integers(0, 2, n), rng.integers(0, 2, n)
    images = np.stack([colour, shape], 1).astype(np.float32) if informative else rng.normal(size=(n, 2)).astype(np.float32)
    records, questions = [], []
    for i in range(n):
        records.append({"image": i, "kind": "closed", "question": "Is it red?", "type": "colour",
                        "answer": "yes" if colour[i] else "no"})
        records.append({"image": i, "kind": "open", "question": "What shape?", "type": "shape",
                        "answer": "round" if shape[i] else "square"})
        questions += [QUESTIONS["colour"], QUESTIONS["shape"]]
    return SplitArrays(images, None, records, {"question": np.stack(questions).astype(np.float32)})


PARAMS = VqaParams(seeds=[0, 1], epochs=30, bootstrap_resamples=100)


def test_answers_from_an_informative_image():
    data = TaskData({"train": split(200, True, 0), "test": split(100, True, 1)}, [])
    result = VisualQuestionAnswering().evaluate(data, PARAMS)
    assert result.metrics["overall_accuracy"].mean > 0.95
    assert result.metrics["closed_accuracy"].mean > 0.95 and result.metrics["open_token_f1"].mean > 0.95
    assert result.n_samples == {"train_records": 400, "test_records": 200, "answers": 4}


def test_uninformative_image_falls_to_the_question_prior():
    data = TaskData({"train": split(200, False, 0), "test": split(100, False, 1)}, [])
    result = VisualQuestionAnswering().evaluate(data, PARAMS)
    baseline = result.details["majority_baseline"]["overall_accuracy"]
    assert abs(result.metrics["overall_accuracy"].mean - baseline) < 0.1
    assert result.metrics["overall_accuracy"].mean < 0.65


def test_majority_answers_by_type():
    records = [{"question": "q", "type": "t", "answer": a} for a in ("no", "no", "yes")]
    records.append({"question": "What is it?", "answer": "x"})
    assert majority_answers(records) == {"t": "no", "what is": "x"}


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_text_answer_is_named(bad):
    records = [{"image": 0, "question": "Is it?", "answer": "yes"}, {"image": 1, "question": "Is it?", "answer": bad}]
    with pytest.raises(HarnessError, match=r"my-vqa/train: record 1 has an empty or non-text answer"):
        check_text_records(records, ("question", "answer"), "my-vqa/train")
