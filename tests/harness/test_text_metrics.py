"""Our text metrics against sacrebleu, rouge-score and coco-caption (pycocoevalcap)."""

import numpy as np
import pytest
import sacrebleu
from pycocoevalcap.cider.cider import Cider
from rouge_score import rouge_scorer

from harness.text_metrics import cider_d_scores, corpus_bleu, rouge_l_scores, token_f1, tokenize

REFERENCES = [
    "sections show sheets of atypical epithelial cells . cellularity is high .",
    "the tissue consists of mature adipose tissue . nuclei are small and uniform .",
    "sections show a dense lymphoid infiltrate . the specimen is densely cellular .",
    "the tissue consists of necrotic debris with nuclear dust .",
]
HYPOTHESES = [
    "sections show sheets of atypical cells . cellularity is high .",
    "the tissue consists of adipose tissue . nuclei are small .",
    "sections show a dense infiltrate of lymphocytes . cellularity is high .",
    "necrotic debris with dust is seen in the tissue .",
]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_matches_sacrebleu(n):
    bleu = sacrebleu.metrics.BLEU(max_ngram_order=n, tokenize="none", smooth_method="none", effective_order=False)
    expected = bleu.corpus_score(HYPOTHESES, [REFERENCES]).score / 100
    ours = corpus_bleu([h.split() for h in HYPOTHESES], [r.split() for r in REFERENCES], max_n=n)
    assert ours == pytest.approx(expected, abs=1e-9)


def test_rouge_l_matches_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    hyps = [h.replace(" .", "") for h in HYPOTHESES]  # rouge-score drops punctuation: compare on words
    refs = [r.replace(" .", "") for r in REFERENCES]
    expected = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)]
    np.testing.assert_allclose(rouge_l_scores([h.split() for h in hyps], [r.split() for r in refs]), expected)


def test_cider_d_matches_coco_caption():
    gts = {i: [r] for i, r in enumerate(REFERENCES)}
    res = {i: [h] for i, h in enumerate(HYPOTHESES)}
    expected_mean, expected = Cider().compute_score(gts, res)
    ours = cider_d_scores([h.split() for h in HYPOTHESES], [[r.split()] for r in REFERENCES])
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert ours.mean() == pytest.approx(expected_mean)


def test_tokenize_and_token_f1():
    assert tokenize("Nuclei are ENLARGED, pleomorphic.") == ["nuclei", "are", "enlarged", ",", "pleomorphic", "."]
    assert token_f1("high grade", "high grade") == 1.0
    assert token_f1("low grade", "high grade") == pytest.approx(0.5)
    assert token_f1("adipose", "stroma") == 0.0
