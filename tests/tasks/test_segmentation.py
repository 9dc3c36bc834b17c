"""The segmentation family: its Dice equals torchmetrics' on the same masks, ignored pixels count
nowhere, and a decoder trained on informative features beats one trained on noise."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.segmentation import dice_score
from torchmetrics.segmentation import MeanIoU

from harness.evaluation import SplitArrays, TaskData
from harness.models.instruments import oracle_mask_features
from harness.tasks.segmentation import Segmentation, SegmentationParams, dice_table, segmentation_metrics

N_CLASSES = 4


def _masks(rng, n=12, size=32):
    """Blobs of three classes on background."""
    masks = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for mask in masks:
        for _ in range(4):
            cy, cx, r = rng.integers(4, size - 4, 2).tolist() + [int(rng.integers(3, 7))]
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(1, N_CLASSES)
    return masks


def _noisy(masks, rng, flip=0.2):
    predicted = masks.copy()
    flips = rng.random(masks.shape) < flip
    predicted[flips] = rng.integers(0, N_CLASSES, flips.sum())
    return predicted


@pytest.mark.parametrize("include_background", [False, True])
def test_dice_equals_torchmetrics_per_image_and_class(include_background):
    """eva's headline (MONAI, classes absent from an image's mask left out) is the mean of
    torchmetrics' per-(image, class) Dice over the pairs whose class is in the mask."""
    rng = np.random.default_rng(0)
    masks = _masks(rng)
    masks[0][masks[0] == 3] = 2  # an image without class 3: that pair is left out, not scored 0 or 1
    predicted = _noisy(masks, rng)
    params = SegmentationParams(include_background=include_background)
    ours = segmentation_metrics(predicted, masks, N_CLASSES, params)
    reference = dice_score(torch.from_numpy(predicted).long(), torch.from_numpy(masks).long(), N_CLASSES,
                           include_background=include_background, average="none", input_format="index").numpy()
    classes = range(0 if include_background else 1, N_CLASSES)
    present = np.stack([[(mask == c).any() for c in classes] for mask in masks])
    assert not present.all()
    assert ours["dice"] == pytest.approx(float(reference[present].mean()), abs=1e-6)
    miou = MeanIoU(num_classes=N_CLASSES, include_background=include_background, input_format="index")
    miou.update(torch.from_numpy(predicted).long(), torch.from_numpy(masks).long())
    assert ours["miou"] == pytest.approx(float(miou.compute()), abs=1e-6)


def test_ignored_pixels_count_nowhere():
    rng = np.random.default_rng(1)
    masks = _masks(rng)
    masks[:, :8] = 3  # a band of the ignored class
    predicted = _noisy(masks, rng)
    params = SegmentationParams(ignore_index=3)
    before = segmentation_metrics(predicted, masks, N_CLASSES, params)
    changed = predicted.copy()
    changed[:, :8] = rng.integers(0, N_CLASSES, changed[:, :8].shape)  # any prediction on ignored pixels
    assert segmentation_metrics(changed, masks, N_CLASSES, params) == pytest.approx(before)
    assert dice_table(predicted, masks, N_CLASSES, params).shape[1] == N_CLASSES - 2  # no background, no ignored
    changed_elsewhere = predicted.copy()
    changed_elsewhere[:, 8:] = 0
    assert segmentation_metrics(changed_elsewhere, masks, N_CLASSES, params)["dice"] < before["dice"]


def _data(rng, features_of):
    splits = {}
    for name, n in (("train", 24), ("val", 8), ("test", 12)):
        masks = _masks(rng, n)
        images = np.repeat((masks * 60)[..., None], 3, axis=3).astype(np.uint8)
        splits[name] = SplitArrays(features_of(masks).astype(np.float16), None, images=images, masks=masks)
    return TaskData(splits=splits, class_names=[f"c{i}" for i in range(N_CLASSES)])


def test_decoder_reads_informative_features_and_not_noise():
    params = SegmentationParams(size=None, steps=60, batch_size=8, seeds=2, bootstrap_resamples=200)
    oracle = lambda masks: np.stack([oracle_mask_features(m, N_CLASSES) for m in masks])  # noqa: E731
    rng = np.random.default_rng(2)
    noise = lambda masks: rng.standard_normal((len(masks), 16, 8, 8))  # noqa: E731
    good = Segmentation().evaluate(_data(np.random.default_rng(3), oracle), params)
    bad = Segmentation().evaluate(_data(np.random.default_rng(3), noise), params)
    assert good.metrics["dice"].mean > 0.8
    assert bad.metrics["dice"].mean < 0.45
    low, high = good.metrics["dice"].ci95
    assert low <= good.metrics["dice"].mean <= high
    assert good.details["eval_split"] == "test" and len(good.details["runs"]) == 2
    assert len(good.samples) == 2 * 12


def test_image_decoder_sees_the_image():
    """conv-with-image on noise features still segments what the pixels show (why eva uses it)."""
    params = SegmentationParams(size=None, steps=80, batch_size=8, seeds=1, decoder="conv-with-image",
                                bootstrap_resamples=100)
    rng = np.random.default_rng(4)
    noise = lambda masks: rng.standard_normal((len(masks), 16, 8, 8))  # noqa: E731
    with_image = Segmentation().evaluate(_data(np.random.default_rng(3), noise), params)
    features_only = Segmentation().evaluate(_data(np.random.default_rng(3), noise),
                                            params.model_copy(update={"decoder": "conv-ms"}))
    assert with_image.metrics["dice"].mean > features_only.metrics["dice"].mean + 0.2


def test_missing_masks_is_a_clear_error():
    data = TaskData(splits={"train": SplitArrays(np.zeros((2, 4)), None)}, class_names=["a", "b"])
    with pytest.raises(ValueError, match="masks and dense features"):
        Segmentation().evaluate(data, SegmentationParams())


def test_the_decoder_trains_and_predicts_where_the_run_computes(monkeypatch):
    """The family hands its decoder the run's device (TaskData.device), and the CPU when none is given."""
    from harness.scoring import segmentation_head

    seen = []

    def train(*args, device, **kwargs):
        seen.append(("train", device))
        raise RuntimeError("stop here")

    monkeypatch.setattr(segmentation_head, "train_decoder", train)
    params = SegmentationParams(size=None, steps=2, batch_size=4, seeds=1, bootstrap_resamples=10)
    oracle = lambda masks: np.stack([oracle_mask_features(m, N_CLASSES) for m in masks])  # noqa: E731
    for device in ("cuda:1", None):
        data = _data(np.random.default_rng(3), oracle)
        data.device = device
        with pytest.raises(RuntimeError, match="stop here"):
            Segmentation().evaluate(data, params)
    assert seen == [("train", "cuda:1"), ("train", "cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the decoder on a GPU runs in the "
                    "prepared device check (`python benchmarks/gpu_check.py --parts segmentation`)")
def test_a_decoder_trained_on_cuda_segments_as_the_cpus():
    params = SegmentationParams(size=None, steps=60, batch_size=8, seeds=2, bootstrap_resamples=200)
    oracle = lambda masks: np.stack([oracle_mask_features(m, N_CLASSES) for m in masks])  # noqa: E731
    results = {}
    for device in ("cpu", "cuda"):
        data = _data(np.random.default_rng(3), oracle)
        data.device = device
        results[device] = Segmentation().evaluate(data, params).metrics["dice"].mean
    assert results["cuda"] == pytest.approx(results["cpu"], abs=0.02)
