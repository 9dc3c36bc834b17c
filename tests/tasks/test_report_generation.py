import numpy as np

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.report_generation import ReportGeneration, ReportParams, Vocabulary, detokenize

REPORTS = ["Sections show fat. Cellularity is low.", "Sections show tumour. Cellularity is high.",
           "The tissue is stroma. Nuclei are small."]


def split(n: int, seed: int) -> SplitArrays:
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    return SplitArrays(np.eye(3, dtype=np.float32)[kind] + 0.01 * rng.normal(size=(n, 3)).astype(np.float32),
                       None, [{"image": i, "report": REPORTS[k]} for i, k in enumerate(kind)])


def test_generated_reports_are_text_and_follow_the_image():
    data = TaskData({"train": split(90, 0), "test": split(30, 1)}, [])
    result = ReportGeneration().evaluate(data, ReportParams(seeds=[0], epochs=25, bootstrap_resamples=50))
    example = result.details["examples"][0]
    assert isinstance(example["generated"], str) and example["generated"][0].isupper()
    assert example["generated"] == example["reference"]  # three distinct reports, one per image kind
    assert result.metrics["bleu4"].mean > 0.9 and result.metrics["nn_cider_d"].mean > 5
    assert set(result.metrics) == set(ReportGeneration.metric_names(ReportParams()))


def test_vocabulary_round_trip_and_detokenize():
    vocab = Vocabulary([["cellularity", "is", "low", "."]])
    ids = vocab.encode(["cellularity", "is", "high", "."], 8)
    assert len(ids) == 8 and vocab.decode(ids[1:]) == ["cellularity", "is", "<unk>", "."]
    assert detokenize(["sections", "show", "fat", ".", "cellularity", "is", "low", "."]) == \
        "Sections show fat. Cellularity is low."
