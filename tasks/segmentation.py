"""Semantic segmentation from a frozen encoder's dense features (eva's protocol).

Each item is an image with a class-index mask of its size. The engine hands the family each
image's feature map (the encoder's last block on its token grid, cached as float16), the image
and its mask. Per seed:
  1. images and masks resized to `size` x `size` (eva's ResizeAndCrop to 224; masks nearest);
  2. a decoder (`conv-ms`, `conv-with-image` or `linear`, harness/scoring/segmentation_head.py)
     trained on the training images with AdamW (lr 0.002) and MONAI's Dice loss, validated after
     every pass over them, the best validation Dice's weights kept, at most `steps` steps;
  3. the kept decoder predicts the test images (the validation images when there is no test
     split, as eva's CoNSeP, MoNuSAC and BCSS configs report their `val` split).
The decoder trains where the run computes (`--device`: on a GPU, as eva trains it; eva's 2,000
steps of 64 images a seed are hours on a CPU); the features stay in host memory and travel a batch
at a time. On a GPU the sums run in another order: a Dice differs from the CPU's in late decimals.
Metrics, as eva's MulticlassSegmentationMetrics computes them:
  dice       MONAI's DiceMetric per image and class, classes absent from an image's mask left out
             (ignore_empty), background excluded unless `include_background`; the mean over every
             (image, class) pair that has a value: eva's headline MonaiDiceScore;
  miou       torchmetrics' MeanIoU (per image, mean over classes present, then over images);
  dice_macro torchmetrics' DiceScore, average "macro".
Pixels of `ignore_index` are left out of the loss and the metrics (eva masks them likewise).
The 95% CI is a bootstrap over the test images (the same resamples for every model). The
result's details carry `constant_baseline`: the best Dice of one class predicted everywhere, which
is what a decoder reading nothing reaches (the chance level of this metric).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.evaluation import Evaluation, MetricInfo, Resamples, TaskData, TaskFamily, summarise
from harness.scoring.bootstrap import N_RESAMPLES, BootstrapInterval, percentile_interval, resample_weights

if TYPE_CHECKING:
    from harness.scoring.segmentation_head import DenseBatches


class SegmentationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    decoder: Literal["conv-ms", "conv-with-image", "linear"] = "conv-ms"
    size: int | None = Field(224, ge=16, le=1024)  # images and masks resized to this (None: as the dataset gives them)
    steps: int = Field(2000, ge=1)  # eva's max_steps (BCSS: 513)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.002, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    eval_every: int | None = Field(None, ge=1)  # steps between validations (None: one pass over the training images)
    patience: int = Field(200, ge=1)  # validations without improvement before stopping (eva's EarlyStopping)
    seeds: int = Field(5, ge=1, le=50)  # eva's n_runs
    include_background: bool = False  # class 0 counts in the metrics (eva's default collection: no)
    ignore_index: int | None = Field(None, ge=0)  # a class left out of loss and metrics (MoNuSAC's "ambiguous")
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"  # absent or None: the validation split is reported (eva's configs)
    bootstrap_resamples: Resamples = N_RESAMPLES


SCORE = MetricInfo()


class Segmentation(TaskFamily):
    name: ClassVar[str] = "segmentation"
    title: ClassVar[str] = "segmentation"
    Params: ClassVar[type[BaseModel]] = SegmentationParams
    dense: ClassVar[bool] = True  # the engine hands feature maps, images and masks

    @staticmethod
    def metrics(params: SegmentationParams) -> dict[str, MetricInfo]:
        return {"dice": SCORE, "miou": SCORE, "dice_macro": SCORE}

    @staticmethod
    def scored_splits(params: SegmentationParams, splits: Sequence[str]) -> list[str]:
        return [reported_split(params, splits)]

    def evaluate(self, data: TaskData, params: SegmentationParams) -> Evaluation:
        from harness.scoring.segmentation_head import DecoderConfig, predict, train_decoder  # torch: when it runs

        n_classes = len(data.class_names)
        train = dense_split(data, params.train_split, params.size)
        val = dense_split(data, params.val_split, params.size)
        reported = reported_split(params, list(data.splits))
        test = val if reported == params.val_split else dense_split(data, reported, params.size)
        config = DecoderConfig(kind=params.decoder, steps=params.steps, batch_size=params.batch_size, lr=params.lr,
                               weight_decay=params.weight_decay, eval_every=params.eval_every,
                               patience=params.patience, ignore_index=params.ignore_index)
        select = lambda predicted, masks: headline_dice(predicted, masks, n_classes, params)  # noqa: E731
        per_seed: dict[str, list[float]] = {"dice": [], "miou": [], "dice_macro": []}
        per_image, runs, samples = [], [], []
        device = data.device or "cpu"
        for seed in range(params.seeds):
            fitted = train_decoder(train, val, n_classes, config, seed, select, device=device)
            predicted = predict(fitted.decoder, test, params.batch_size, device=device)
            masks = np.asarray(test.masks)
            table = dice_table(predicted, masks, n_classes, params)  # (images, classes), NaN: absent
            values = segmentation_metrics(predicted, masks, n_classes, params, table)
            for name in per_seed:
                per_seed[name].append(values[name])
            per_image.append(table)
            runs.append({"seed": seed, "best_step": fitted.best_step, "steps": fitted.steps_run,
                         "validations": len(fitted.val_scores)})
            samples += [{"item": i, "seed": seed, "dice": None if np.isnan(row).all() else float(np.nanmean(row))}
                        for i, row in enumerate(table)]
        interval = dice_interval(per_image, params.bootstrap_resamples)
        masks = np.asarray(test.masks)
        constant = max(headline_dice(np.full_like(masks, c), masks, n_classes, params) for c in range(n_classes)
                       if c != params.ignore_index)
        metrics = {name: summarise(values, interval if name == "dice" else None) for name, values in per_seed.items()}
        return Evaluation(
            metrics=metrics,
            n_samples={"train": len(train), "val": len(val), reported: len(test)},
            seeds=list(range(params.seeds)),
            details={"eval_split": reported, "decoder": params.decoder, "feature_grid": list(train.features.shape[1:]),
                     "runs": runs, "constant_baseline": {"dice": round(float(constant), 6)}},
            samples=samples,
        )


def reported_split(params: SegmentationParams, splits: Sequence[str]) -> str:
    """The split the scores are reported on: `test_split`, or the validation split where the dataset
    has none (eva's configs report the split the decoder is selected on)."""
    return params.test_split if params.test_split in splits else params.val_split


def dense_split(data: TaskData, name: str, size: int | None) -> DenseBatches:
    from harness.scoring.segmentation_head import DenseBatches

    split = data.splits.get(name)
    if split is None:
        raise ValueError(f"segmentation needs a '{name}' split (the dataset has: {', '.join(data.splits)})")
    if split.masks is None or split.images is None or np.ndim(split.embeddings) != 4:
        raise ValueError("segmentation needs masks and dense features (a dataset with masks, and a dense family)")
    images, masks = resized(np.asarray(split.images), np.asarray(split.masks), size)
    return DenseBatches(split.embeddings, images, masks)


def resized(images: np.ndarray, masks: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Images bilinear (antialiased), masks nearest, to size x size."""
    if size is None or images.shape[1:3] == (size, size):
        return images, masks
    import torch
    from torch.nn import functional

    out_images, out_masks = [], []
    for start in range(0, len(images), 64):
        x = torch.from_numpy(images[start : start + 64]).permute(0, 3, 1, 2).float()
        x = functional.interpolate(x, (size, size), mode="bilinear", antialias=True, align_corners=False)
        out_images.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
        m = torch.from_numpy(masks[start : start + 64].astype(np.int64))[:, None].float()
        out_masks.append(functional.interpolate(m, (size, size), mode="nearest")[:, 0].to(torch.uint8).numpy())
    return np.concatenate(out_images), np.concatenate(out_masks)


def _one_hot(predicted: np.ndarray, masks: np.ndarray, n_classes: int, ignore_index: int | None):
    """(N, C, H, W) one-hot tensors of predictions and targets; with an ignore index, its pixels
    are zero in both and its channel removed (so it counts nowhere)."""
    import torch
    from torch.nn import functional

    pred = functional.one_hot(torch.from_numpy(predicted.astype(np.int64)), n_classes).permute(0, 3, 1, 2)
    target = functional.one_hot(torch.from_numpy(masks.astype(np.int64)), n_classes).permute(0, 3, 1, 2)
    if ignore_index is not None:
        keep = torch.from_numpy(masks != ignore_index).unsqueeze(1)
        pred, target = pred * keep, target * keep
        channels = [c for c in range(n_classes) if c != ignore_index]
        pred, target = pred[:, channels], target[:, channels]
    return pred, target


def _drops_background(params: SegmentationParams) -> bool:
    return not params.include_background and params.ignore_index != 0


def dice_table(predicted: np.ndarray, masks: np.ndarray, n_classes: int, params: SegmentationParams) -> np.ndarray:
    """MONAI's DiceMetric per (image, class): NaN where the class is absent from the image's mask."""
    from monai.metrics import DiceMetric

    pred, target = _one_hot(predicted, masks, n_classes, params.ignore_index)
    metric = DiceMetric(include_background=not _drops_background(params), reduction="none", ignore_empty=True)
    return metric(pred, target).numpy().astype(np.float64)


def headline_dice(predicted: np.ndarray, masks: np.ndarray, n_classes: int, params: SegmentationParams) -> float:
    return mean_of_table(dice_table(predicted, masks, n_classes, params))


def mean_of_table(table: np.ndarray) -> float:
    """eva's headline: the mean over the (image, class) pairs that have a value."""
    return float(np.nanmean(table)) if np.isfinite(table).any() else float("nan")


def segmentation_metrics(predicted: np.ndarray, masks: np.ndarray, n_classes: int, params: SegmentationParams,
                         table: np.ndarray | None = None) -> dict[str, float]:
    """The three metrics; `table`: the dice_table of these predictions, when already computed."""
    from torchmetrics.segmentation import DiceScore, MeanIoU

    pred, target = _one_hot(predicted, masks, n_classes, params.ignore_index)
    channels = pred.shape[1]
    include = not _drops_background(params)
    miou = MeanIoU(num_classes=channels, include_background=include, input_format="one-hot")
    dice = DiceScore(num_classes=channels, include_background=include, average="macro", input_format="one-hot")
    miou.update(pred, target)
    dice.update(pred, target)
    table = dice_table(predicted, masks, n_classes, params) if table is None else table
    return {"dice": mean_of_table(table), "miou": float(miou.compute()),
            "dice_macro": float(dice.compute())}


def dice_interval(tables: list[np.ndarray], n_resamples: int) -> BootstrapInterval:
    """Bootstrap over test images of the seed-mean headline Dice (each seed's nan-mean over the
    resampled images' (image, class) values), the same resamples for every seed and model."""
    n = len(tables[0])
    replicates = []
    for weights in resample_weights(n, n_resamples, seed=0):
        per_seed = []
        for table in tables:
            present = np.isfinite(table)
            values = np.where(present, table, 0.0)
            total = weights @ values.sum(axis=1)
            count = weights @ present.sum(axis=1)
            per_seed.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
        replicates.append(np.mean(per_seed, axis=0))
    replicates = np.concatenate(replicates)
    low, high = percentile_interval(replicates)
    return BootstrapInterval(low, high, replicates)
