"""Our text metrics on raw text against sacrebleu, rouge-score and coco-caption (pycocoevalcap,
its PTB tokeniser included): each metric must tokenise as its reference does, punctuation,
casing, brackets, hyphens, numbers and contractions included."""

import shutil

import numpy as np
import pytest
import sacrebleu
from pycocoevalcap.cider.cider import Cider
from rouge_score import rouge_scorer

from harness.scoring.text_metrics import (bleu_from_statistics, bleu_statistics, bleu_tokens, cider_d_scores,
                                          cider_tokens, rouge_l_scores, rouge_tokens, token_f1, tokenize)
from harness.tasks.report_generation import score_reports

REFERENCES = [
    "Sections show sheets of atypical epithelial cells. Cellularity is high.",
    "The tissue consists of mature adipose tissue; nuclei are small and uniform.",
    "Sections show a dense lymphoid infiltrate (grade 2), 3.5 mm across. The specimen is densely cellular.",
    "The tissue consists of necrotic debris with nuclear dust, and the patient's margins aren't involved.",
    "Well-differentiated glands: H&E shows 1/3 of crypts with goblet cells!",
]
HYPOTHESES = [
    "Sections show sheets of atypical cells. Cellularity is high.",
    "The tissue consists of adipose tissue. Nuclei are small.",
    "Sections show a dense infiltrate of lymphocytes (grade 2). Cellularity is high.",
    "Necrotic debris with dust is seen in the tissue; margins aren't involved.",
    "well-differentiated glands, h&e shows crypts with goblet cells.",
]
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="coco-caption's PTB tokeniser needs Java")


def ptb(texts: list[str]) -> list[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    return [tokenized[i][0] for i in range(len(texts))]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_matches_sacrebleu_on_raw_text(n):
    bleu = sacrebleu.metrics.BLEU(max_ngram_order=n, smooth_method="none", effective_order=False)  # 13a default
    expected = bleu.corpus_score(HYPOTHESES, [REFERENCES]).score / 100
    statistics = bleu_statistics([bleu_tokens(h) for h in HYPOTHESES], [bleu_tokens(r) for r in REFERENCES])
    ours = float(bleu_from_statistics(statistics.sum(axis=0), n)[0])  # as report_generation sums them
    assert ours == pytest.approx(expected, abs=1e-9)


def test_rouge_l_matches_rouge_score_on_raw_text():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(HYPOTHESES, REFERENCES)]
    ours = rouge_l_scores([rouge_tokens(h) for h in HYPOTHESES], [rouge_tokens(r) for r in REFERENCES])
    np.testing.assert_allclose(ours, expected)


@needs_java
def test_our_tokens_are_coco_captions_tokens():
    punctuation_free = [" ".join(cider_tokens(t)) for t in REFERENCES + HYPOTHESES]
    assert punctuation_free == ptb(REFERENCES + HYPOTHESES)


@needs_java
def test_cider_d_matches_coco_caption_on_raw_text():
    gts = {i: [r] for i, r in enumerate(ptb(REFERENCES))}
    res = {i: [h] for i, h in enumerate(ptb(HYPOTHESES))}
    expected_mean, expected = Cider().compute_score(gts, res)
    ours = cider_d_scores([cider_tokens(h) for h in HYPOTHESES], [[cider_tokens(r)] for r in REFERENCES])
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert ours.mean() == pytest.approx(expected_mean)


@needs_java
def test_the_report_family_scores_raw_text_as_the_references_do():
    metrics, _ = score_reports([HYPOTHESES], REFERENCES, resamples=20)
    expected_cider, _ = Cider().compute_score({i: [r] for i, r in enumerate(ptb(REFERENCES))},
                                              {i: [h] for i, h in enumerate(ptb(HYPOTHESES))})
    assert metrics["cider_d"].mean == pytest.approx(expected_cider)
    bleu = sacrebleu.metrics.BLEU(smooth_method="none", effective_order=False)
    assert metrics["bleu4"].mean == pytest.approx(bleu.corpus_score(HYPOTHESES, [REFERENCES]).score / 100)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    assert metrics["rouge_l"].mean == pytest.approx(
        np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(HYPOTHESES, REFERENCES)]))


def test_tokenize_and_token_f1():
    assert tokenize("Nuclei are ENLARGED, pleomorphic.") == ["nuclei", "are", "enlarged", ",", "pleomorphic", "."]
    assert token_f1("high grade", "high grade") == 1.0
    assert token_f1("low grade", "high grade") == pytest.approx(0.5)
    assert token_f1("adipose", "stroma") == 0.0
