"""Text-generation and answer metrics on raw text, each tokenised as its reference implementation
tokenises (our own tokeniser, `tokenize`, is for the decoder's vocabulary and answers only).

- BLEU-n: corpus BLEU without smoothing on sacrebleu's default `13a` tokens (case kept); equals
  sacrebleu's BLEU(tokenize="13a", smooth_method="none") on the same raw text.
- ROUGE-L: the mean LCS F-measure on rouge-score's tokens (lower case, non-alphanumerics to
  spaces, no stemming); equals rouge-score's rougeL F.
- CIDEr-D: coco-caption's, on coco-caption's tokens (its PTB tokeniser lower-cased, then its
  punctuation list removed), with its length penalty on the bigram count (sigma 6) and x10
  scaling; equals PTBTokenizer + Cider on the same raw text.
Tests check each against those packages on raw text with punctuation and casing.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case words and single punctuation marks: the report decoder's vocabulary units."""
    return _TOKEN.findall(text.lower())


# mteval-v13a, as sacrebleu's default tokeniser (punctuation split off; "." and "," kept inside numbers)
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def bleu_tokens(text: str) -> list[str]:
    line = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A:
        line = pattern.sub(replacement, line)
    return line.split()


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokeniser: lower case, every run of non-alphanumerics is a space."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


# coco-caption: Stanford's PTB tokeniser (harness/scoring/ptb_tokens.py), lower-cased, then this
# punctuation list removed. The list is upper case, so the lower-cased bracket tokens (-lrb- ...)
# stay, as they do in coco-caption.
_COCO_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                     "...", ";", '"'}


def cider_tokens(text: str) -> list[str]:
    """coco-caption's tokens: PTB tokens of the text as written (newlines as spaces), then
    lower-cased, then its punctuation list removed (case-sensitive, so -lrb- and -rrb- stay)."""
    from harness.scoring.ptb_tokens import ptb_tokens

    return [t for t in (token.lower() for token in ptb_tokens(text.replace("\n", " "))) if t not in _COCO_PUNCTUATION]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_statistics(hypotheses: list[list[str]], references: list[list[str]], max_n: int = 4) -> np.ndarray:
    """Per item sufficient statistics: [matches_1..n, totals_1..n, hyp_len, ref_len].

    Corpus BLEU of any weighted subset (e.g. a bootstrap resample) is BLEU of w @ statistics.
    """
    stats = np.zeros((len(hypotheses), 2 * max_n + 2))
    for i, (hyp, ref) in enumerate(zip(hypotheses, references)):
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            stats[i, n - 1] = sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            stats[i, max_n + n - 1] = max(len(hyp) - n + 1, 0)
        stats[i, -2:] = (len(hyp), len(ref))
    return stats


def bleu_from_statistics(summed: np.ndarray, order: int, max_n: int = 4) -> np.ndarray:
    """BLEU-order in [0, 1] from statistics collected up to max_n, one value per row (B, 2max_n+2)."""
    summed = np.atleast_2d(summed)
    matches, totals = summed[:, :order], summed[:, max_n : max_n + order]
    hyp_len, ref_len = summed[:, -2], summed[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_precision = np.log(matches / totals).mean(axis=1)
        brevity = np.where(hyp_len > ref_len, 1.0, np.exp(1.0 - ref_len / hyp_len))
        bleu = brevity * np.exp(log_precision)
    return np.where((hyp_len > 0) & (matches > 0).all(axis=1), bleu, 0.0)


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_scores(hypotheses: list[list[str]], references: list[list[str]]) -> np.ndarray:
    """Per pair LCS F-measure (beta 1)."""
    scores = []
    for hyp, ref in zip(hypotheses, references):
        lcs = _lcs(hyp, ref)
        if lcs == 0:
            scores.append(0.0)
            continue
        precision, recall = lcs / len(hyp), lcs / len(ref)
        scores.append(2 * precision * recall / (precision + recall))
    return np.array(scores)


def cider_d_scores(hypotheses: list[list[str]], references: list[list[list[str]]], sigma: float = 6.0) -> np.ndarray:
    """Per item CIDEr-D; references[i] is the list of reference token lists of item i."""
    def counts(tokens):
        return sum((_ngrams(tokens, n) for n in range(1, 5)), Counter())

    ref_counts = [[counts(r) for r in refs] for refs in references]
    document_frequency: Counter = Counter()
    for refs in ref_counts:
        document_frequency.update(set().union(*(r.keys() for r in refs)))
    log_n_docs = np.log(float(len(references)))

    def vector(cnts):
        vec = [defaultdict(float) for _ in range(4)]
        norm = np.zeros(4)
        length = 0
        for gram, tf in cnts.items():
            n = len(gram) - 1
            vec[n][gram] = tf * (log_n_docs - np.log(max(1.0, document_frequency[gram])))
            norm[n] += vec[n][gram] ** 2
            if n == 1:  # coco-caption counts length in bigrams
                length += tf
        return vec, np.sqrt(norm), length

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts):
        vec_h, norm_h, len_h = vector(counts(hyp))
        total = np.zeros(4)
        for ref in refs:
            vec_r, norm_r, len_r = vector(ref)
            for n in range(4):
                value = sum(min(w, vec_r[n][g]) * vec_r[n][g] for g, w in vec_h[n].items())
                if norm_h[n] != 0 and norm_r[n] != 0:
                    value /= norm_h[n] * norm_r[n]
                total[n] += value * math.exp(-((len_h - len_r) ** 2) / (2 * sigma**2))
        scores.append(10.0 * total.mean() / len(refs))
    return np.array(scores)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token overlap F1 between a predicted and a reference answer."""
    pred, ref = tokenize(prediction), tokenize(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)
