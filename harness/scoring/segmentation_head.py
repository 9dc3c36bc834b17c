"""eva's segmentation decoders on frozen dense features, and the loop that trains one.

Decoders (kaiko-ai/eva, `vision/models/networks/decoders/segmentation`), rewritten here:
  linear           a 1 x 1 convolution on the feature map (eva's ConvDecoder1x1);
  conv-ms          upsample x2, 3 x 3 conv to 64, upsample x2, 3 x 3 conv to the classes (eva's
                   ConvDecoderMS, DINOv2's "+ms" head; eva's offline configs);
  conv-with-image  upsample x2, conv-BN-ReLU to 64, bilinear to the image size, the RGB image
                   concatenated, two conv-BN-ReLU (32, 32), a 1 x 1 conv to the classes (eva's
                   ConvDecoderWithImage; its online configs for CoNSeP and MoNuSAC). Seeing the
                   image lets a decoder place edges that a coarse token grid (16 px cells) cannot.
Every decoder's logits are resized bilinearly to the image size.

Training (eva's SemanticSegmentationModule with its configs' settings): AdamW, MONAI's Dice loss
(softmax, one-hot targets, batch=True; pixels of `ignore_index` zeroed in logits and targets, as
eva's DiceLoss does), shuffled batches, a validation after every pass over the training images,
the best validation score's weights kept (eva's `checkpoint_type: best`), stopped early after
`patience` validations without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

Decoder = Literal["linear", "conv-ms", "conv-with-image"]
# Decoders and their batches are channels-last: oneDNN's convolutions in that layout take about half
# the time on CPU for these shapes (benchmarks/evaluation.py prints the ratio). The sums run in
# another order, so a Dice differs from the default layout's in the fourth decimal.
MEMORY_FORMAT = torch.channels_last
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what eva's configs normalise the decoder's image with
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBnReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


class SegmentationDecoder(nn.Module):
    """(features (B, D, h, w), images (B, 3, H, W) normalised) -> logits (B, classes, H, W)."""

    def __init__(self, kind: Decoder, in_features: int, n_classes: int):
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.head = nn.Conv2d(in_features, n_classes, 1)
        elif kind == "conv-ms":
            self.head = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(in_features, 64, 3, padding=1),
                                      nn.Upsample(scale_factor=2), nn.Conv2d(64, n_classes, 3, padding=1))
        else:
            self.head = nn.Sequential(nn.Upsample(scale_factor=2), ConvBnReLU(in_features, 64))
            self.image_block = nn.Sequential(ConvBnReLU(64 + 3, 32), ConvBnReLU(32, 32))
            self.classifier = nn.Conv2d(32, n_classes, 1)

    def forward(self, features: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        logits = functional.interpolate(self.head(features), size, mode="bilinear")
        if self.kind != "conv-with-image":
            return logits
        return self.classifier(self.image_block(torch.cat([logits, images], dim=1)))


@dataclass(frozen=True)
class DecoderConfig:
    kind: Decoder = "conv-ms"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 0.002
    weight_decay: float = 0.01  # torch's AdamW default, which eva's configs keep
    eval_every: int | None = None  # steps between validations; None: one pass over the training images
    patience: int = 200  # validations without improvement before stopping
    ignore_index: int | None = None


def dice_loss(n_classes: int) -> Callable[[torch.Tensor, torch.Tensor, int | None], torch.Tensor]:
    """eva's DiceLoss: MONAI's (softmax, batch), targets one-hot; ignored pixels zeroed in both."""
    from monai.losses import DiceLoss

    loss = DiceLoss(softmax=True, batch=True)

    def compute(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
        if ignore_index is not None:
            keep = masks != ignore_index
            masks = masks * keep
            logits = logits * keep.unsqueeze(1)
        onehot = functional.one_hot(masks.long(), n_classes).permute(0, 3, 1, 2).float()
        return loss(logits, onehot)

    return compute


class DenseBatches:
    """Batches of (features, normalised images, masks) as float tensors, read from (memory-mapped)
    arrays one batch at a time: a ViT-L's maps of a CoNSeP-sized split never sit in memory whole."""

    def __init__(self, features: np.ndarray, images: np.ndarray, masks: np.ndarray):
        self.features, self.images, self.masks = features, images, masks
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.masks)

    def batch(self, index: np.ndarray, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows `index` (read in sorted order), on `device`: uint8 images and float16 features
        travel as they are stored and are converted there."""
        index = np.sort(index)  # memory-mapped rows read in order
        features = torch.from_numpy(np.asarray(self.features[index])).to(device)
        images = torch.from_numpy(np.asarray(self.images[index])).to(device)
        masks = torch.from_numpy(np.asarray(self.masks[index], dtype=np.int64)).to(device)
        # one copy each: to float32 and to the decoders' layout at once (the images' NHWC rows, permuted,
        # already are channels-last)
        features = features.to(torch.float32, memory_format=MEMORY_FORMAT)
        images = images.permute(0, 3, 1, 2).float() / 255.0
        images = ((images - self.mean.to(device)) / self.std.to(device)).contiguous(memory_format=MEMORY_FORMAT)
        return features, images, masks


def predict(decoder: SegmentationDecoder, data: DenseBatches, batch_size: int, device: str = "cpu") -> np.ndarray:
    """(n, H, W) argmax class of every pixel; the decoder is on `device`."""
    decoder.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            features, images, _ = data.batch(np.arange(start, min(start + batch_size, len(data))), device)
            out.append(decoder(features, images).argmax(dim=1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *data.masks.shape[1:]), np.uint8)


@dataclass
class TrainedDecoder:
    decoder: SegmentationDecoder
    best_step: int
    steps_run: int
    val_scores: list[tuple[int, float]]  # (step, validation score) of every validation


def train_decoder(train: DenseBatches, val: DenseBatches, n_classes: int, config: DecoderConfig, seed: int,
                  score: Callable[[np.ndarray, np.ndarray], float], device: str = "cpu") -> TrainedDecoder:
    """Fit one decoder on `device` (initialised on the CPU, so a seed starts from the same weights
    anywhere); `score(predicted, masks)` on the validation images picks the kept weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decoder = SegmentationDecoder(config.kind, int(train.features.shape[1]), n_classes)
    decoder = decoder.to(device, memory_format=MEMORY_FORMAT)
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_of = dice_loss(n_classes)
    batch = min(config.batch_size, len(train))
    per_pass = max(1, len(train) // batch)  # drop_last: every step sees a full batch
    every = config.eval_every or per_pass
    best, best_state, best_step, stale, history = -np.inf, None, 0, 0, []
    order, position, step = rng.permutation(len(train)), 0, 0
    while step < config.steps:
        if position + batch > len(order):
            order, position = rng.permutation(len(train)), 0
        features, images, masks = train.batch(order[position : position + batch], device)
        position += batch
        decoder.train()
        loss = loss_of(decoder(features, images), masks, config.ignore_index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if step % every == 0 or step == config.steps:
            value = score(predict(decoder, val, batch, device), np.asarray(val.masks))
            history.append((step, round(float(value), 6)))
            if value > best:
                best, best_step, stale = value, step, 0
                best_state = {k: v.detach().clone() for k, v in decoder.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        decoder.load_state_dict(best_state)
    return TrainedDecoder(decoder, best_step, step, history)
