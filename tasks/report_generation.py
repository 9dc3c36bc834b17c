"""Report generation from a frozen image embedding (this project's protocol, see README).

A small transformer decoder reads the embedding as `prefix_tokens` learned prefix vectors and
writes the report word by word: teacher forcing on train, greedy decoding on test. Beside it,
the nearest-neighbour baseline returns the report of the most cosine-similar train image.
Metrics: BLEU-1..4, ROUGE-L and CIDEr-D (main score: CIDEr-D weighs the n-grams that are
specific to an image by their rarity across reports, so it rewards saying what is in this tile
rather than the phrasing every report shares; BLEU is dominated by that shared phrasing).
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_ci, bootstrap_mean_ci
from harness.evaluation import (
    Dropout, Evaluation, MetricInfo, MetricSummary, Rate, Resamples, SCORE, Seeds, Steps, TaskData, TaskFamily,
    record_image_features, summarise,
)
from harness.scoring.metrics import cosine_top_k
from harness.scoring.head_optimiser import head_adamw
from harness.scoring.parallel_fits import map_fits
from harness.scoring.torch_threads import single_thread
from harness.scoring.text_metrics import (bleu_from_statistics, bleu_statistics, bleu_tokens, cider_d_scores, cider_tokens,
                                          rouge_l_scores, rouge_tokens, tokenize)

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
TEXT_METRICS = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider_d"]


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2])
    epochs: Steps = 15
    batch_size: Steps = 64
    lr: Rate = 2e-3
    d_model: int = Field(64, ge=1, le=4096)
    layers: int = Field(2, ge=1, le=64)
    heads: int = Field(4, ge=1, le=64)
    prefix_tokens: int = Field(4, ge=1, le=256)
    dropout: Dropout = 0.1
    max_tokens: int = Field(48, ge=3, le=4096)  # with the start and end tokens
    train_split: str = "train"
    test_split: str = "test"
    bootstrap_resamples: Resamples = N_RESAMPLES

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> "ReportParams":
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads} (each head takes an "
                             "equal share of the width)")
        return self


class Vocabulary:
    def __init__(self, texts: list[list[str]]):
        counts = Counter(token for tokens in texts for token in tokens)
        self.tokens = SPECIALS + sorted(counts)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def encode(self, tokens: list[str], length: int) -> list[int]:
        ids = [BOS] + [self.index.get(t, UNK) for t in tokens][: length - 2] + [EOS]
        return ids + [PAD] * (length - len(ids))

    def decode(self, ids: list[int]) -> list[str]:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.tokens[i])
        return words


def detokenize(tokens: list[str]) -> str:
    """Readable text from tokens: no space before punctuation, sentences capitalised."""
    text = ""
    for token in tokens:
        text += token if (token in ".,;:!?" or not text) else " " + token
    return ". ".join(s[:1].upper() + s[1:] for s in text.split(". "))


def _build_decoder(embed_dim: int, vocab_size: int, params: ReportParams):
    import torch
    from torch import nn

    class PrefixDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.prefix = nn.Linear(embed_dim, params.prefix_tokens * params.d_model)
            self.tokens = nn.Embedding(vocab_size, params.d_model, padding_idx=PAD)
            self.positions = nn.Parameter(torch.zeros(1, params.prefix_tokens + params.max_tokens, params.d_model))
            layer = nn.TransformerEncoderLayer(params.d_model, params.heads, 4 * params.d_model,
                                               params.dropout, batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, params.layers, enable_nested_tensor=False)
            self.out = nn.Linear(params.d_model, vocab_size)

        def forward(self, embeddings, token_ids):
            prefix = self.prefix(embeddings).view(len(embeddings), params.prefix_tokens, params.d_model)
            x = torch.cat([prefix, self.tokens(token_ids)], dim=1)
            x = x + self.positions[:, : x.shape[1]]
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
            return self.out(self.body(x, mask=mask, is_causal=True))[:, params.prefix_tokens :]

    return PrefixDecoder()


def _train_and_decode(x_train, y_train, x_test, vocab_size: int, params: ReportParams, seed: int,
                      length: int) -> list[list[int]]:
    with single_thread():  # like every head: the same numbers on any number of cores
        import torch
        from torch import nn

        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = _build_decoder(x_train.shape[1], vocab_size, params)
        optimiser = head_adamw(model.parameters(), lr=params.lr, weight_decay=1e-4)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        model.train()
        for _ in range(params.epochs):
            for batch in torch.randperm(len(xt), generator=generator).split(params.batch_size):
                logits = model(xt[batch], yt[batch][:, :-1])  # teacher forcing: predict the next token
                loss = nn.functional.cross_entropy(logits.reshape(-1, vocab_size), yt[batch][:, 1:].reshape(-1),
                                                   ignore_index=PAD)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            tokens = torch.full((len(x_test), 1), BOS, dtype=torch.long)
            prefix_input = torch.from_numpy(x_test)
            for _ in range(length - 1):
                next_token = model(prefix_input, tokens)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, next_token], dim=1)
                if (tokens == EOS).any(dim=1).all():
                    break
        return tokens[:, 1:].tolist()


def score_reports(hypotheses: list[list[str]], references: list[str], resamples: int
                  ) -> tuple[dict[str, MetricSummary], dict[str, list[np.ndarray]]]:
    """Metrics over seeds (one list of report texts per seed) with bootstrap CIs on test items, and
    the per-report ROUGE-L and CIDEr-D of each seed. Each metric tokenises the raw texts as its
    reference implementation does (harness/scoring/text_metrics.py)."""
    tokens = {name: [tokenizer(r) for r in references] for name, tokenizer in
              (("bleu", bleu_tokens), ("rouge", rouge_tokens), ("cider", cider_tokens))}
    per_seed: dict[str, list[float]] = {m: [] for m in TEXT_METRICS}
    stats, rouge, cider = [], [], []
    for texts in hypotheses:
        stats.append(bleu_statistics([bleu_tokens(t) for t in texts], tokens["bleu"]))
        rouge.append(rouge_l_scores([rouge_tokens(t) for t in texts], tokens["rouge"]))
        cider.append(cider_d_scores([cider_tokens(t) for t in texts], [[r] for r in tokens["cider"]]))
        for order in range(1, 5):
            per_seed[f"bleu{order}"].append(float(bleu_from_statistics(stats[-1].sum(0), order)[0]))
        per_seed["rouge_l"].append(float(rouge[-1].mean()))
        per_seed["cider_d"].append(float(cider[-1].mean()))
    metrics = {}
    n = len(references)
    for order in range(1, 5):
        def over_seeds(weights, order=order):
            return np.mean([bleu_from_statistics(weights @ s, order) for s in stats], axis=0)

        metrics[f"bleu{order}"] = summarise(per_seed[f"bleu{order}"], bootstrap_ci(over_seeds, n, n_resamples=resamples))
    for name, values in (("rouge_l", rouge), ("cider_d", cider)):
        ci = bootstrap_mean_ci(np.mean(values, axis=0), n_resamples=resamples)
        metrics[name] = summarise(per_seed[name], ci)
    return metrics, {"rouge_l": rouge, "cider_d": cider}


class ReportGeneration(TaskFamily):
    name: ClassVar[str] = "report_generation"
    title: ClassVar[str] = "report generation"
    Params: ClassVar[type[BaseModel]] = ReportParams

    @staticmethod
    def scored_splits(params: ReportParams, splits: Sequence[str]) -> list[str] | None:
        return [params.test_split]

    @staticmethod
    def metrics(params: ReportParams) -> dict[str, MetricInfo]:
        # CIDEr-D is a tf-idf weighted n-gram similarity x 10: above 1 for close texts, no upper bound used
        info = {m: MetricInfo(bounds=(0.0, None)) if m == "cider_d" else SCORE for m in TEXT_METRICS}
        return {**info, **{f"nn_{m}": value for m, value in info.items()}}

    def evaluate(self, data: TaskData, params: ReportParams) -> Evaluation:
        train, test = data.splits.get(params.train_split), data.splits.get(params.test_split)
        if train is None or test is None or not train.records or not test.records:
            raise ValueError(f"report generation needs report records in '{params.train_split}' and '{params.test_split}'")
        train_tokens = [tokenize(r["report"]) for r in train.records]
        test_tokens = [tokenize(r["report"]) for r in test.records]
        vocab = Vocabulary(train_tokens)
        x_train, x_test = record_image_features(train, train), record_image_features(train, test)
        length = min(params.max_tokens, max(len(t) for t in train_tokens) + 2)  # pad to the longest report
        y_train = np.array([vocab.encode(t, length) for t in train_tokens], dtype=np.int64)

        def fit_seed(k: int) -> list[list[int]]:
            return _train_and_decode(x_train, y_train, x_test, len(vocab.tokens), params, params.seeds[k], length)

        # per seed, the decoded reports as text (what a reader sees, and what is scored)
        generated = [[detokenize(vocab.decode(row)) for row in ids] for ids in map_fits(fit_seed, len(params.seeds))]

        references = [r["report"] for r in test.records]
        metrics, per_report = score_reports(generated, references, params.bootstrap_resamples)
        nearest = cosine_top_k(test.embeddings[[r["image"] for r in test.records]],
                               train.embeddings[[r["image"] for r in train.records]], 1)[:, 0]
        baseline, _ = score_reports([[train.records[i]["report"] for i in nearest]], references,
                                    params.bootstrap_resamples)
        samples = [{"item": i, "seed": seed, "image": test.records[i].get("image"), "reference": references[i],
                    "generated": texts[i], "rouge_l": float(per_report["rouge_l"][k][i]),
                    "cider_d": float(per_report["cider_d"][k][i])}
                   for k, (seed, texts) in enumerate(zip(params.seeds, generated)) for i in range(len(references))]
        metrics.update({f"nn_{name}": value for name, value in baseline.items()})
        return Evaluation(
            metrics=metrics,
            n_samples={"train_reports": len(train_tokens), "test_reports": len(test_tokens),
                       "vocabulary": len(vocab.tokens)},
            seeds=list(params.seeds),
            details={"decoding": "greedy", "examples": [
                {"generated": generated[0][i], "reference": test.records[i]["report"]}
                for i in range(min(3, len(test_tokens)))]},
            samples=samples,
        )
