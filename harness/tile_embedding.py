"""Embedding extraction: DataLoader workers prepare tiles, the main process runs the encoder.

Workers decode and resize (uint8, cheap to pass between processes); the main process scales,
normalises and runs the frozen encoder under inference_mode. Precision `auto` runs bf16 autocast
where the hardware computes bf16 natively (CUDA, and CPUs with AVX512-BF16/AMX, where it is ~2x
faster than fp32) and fp32 elsewhere; the precision is part of the embedding cache key, so fp32
and bf16 embeddings never mix.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from harness.embedding_cache import CachedEmbeddings, EmbeddingCache
from harness.errors import HarnessError
from harness.models.encoder import ImageEncoder
from harness.models.instruments import InstrumentEncoder
from harness.models.transform import TileTransform
from harness.progress import progress_bar
from harness.sources.base import TileSource
from harness.sources.image_files import tile_pixels

DENSE_SHARD = 64  # images per shard of dense features (a ViT-L's 16 x 16 x 1024 map is 0.5 MB in float16)
MIN_IMAGES_FOR_CONSTANT_CHECK = 8  # fewer may embed alike; 8 distinct tiles never do (copies of one tile: checked)


@dataclass(frozen=True)
class ExtractOptions:
    batch_size: int = 32
    num_workers: int = 0  # DataLoader workers; resolve_workers picks the default for a device
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" or "bf16" (resolve_precision turns "auto" into one of them)


def resolve_device(requested: str) -> str:
    """"auto" -> "cuda" or "cpu". Under torchrun each process takes its own GPU ("cuda:LOCAL_RANK",
    made the current device), so N processes on an N-GPU machine do not all land on GPU 0."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    if requested == "cuda" and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        index = int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return requested


def on_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def resolve_workers(requested: int | None, device: str) -> int:
    """Workers that decode and resize tiles beside the model. On CPU none: the model's threads
    already use every core, and the forward is ~99% of extraction's wall time (the forward share
    `benchmarks/extraction.py` prints), so workers could only take time from it. On CUDA the CPU is
    free to feed the device: up to 8, one core left to each main process (under torchrun the cores
    are shared out among the processes)."""
    if requested is not None:
        return requested
    processes = max(1, int(os.environ.get("WORLD_SIZE", 1)))
    return 0 if not on_cuda(device) else max(1, min(8, (os.cpu_count() or 2) // processes - 1))


def resolve_precision(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if on_cuda(device):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def default_extract_options(device: str) -> ExtractOptions:
    """What a command without extraction flags uses on `device`: auto precision, default workers."""
    return ExtractOptions(device=device, precision=resolve_precision("auto", device),
                          num_workers=resolve_workers(None, device))


class DevicePrefetcher:
    """A DataLoader's uint8 image batches, already on the device (a batch is the images tensor, or
    a tuple whose element `images_at` is). On CUDA the next batch is copied (pinned memory,
    non_blocking) on a side stream while the current one is embedded, so the device does not wait
    for the copy; elsewhere each batch is moved when it is needed."""

    def __init__(self, loader, device: torch.device, images_at: int | None = None):
        self.loader, self.device, self.images_at = loader, device, images_at

    def _images(self, batch) -> torch.Tensor:
        return batch if self.images_at is None else batch[self.images_at]

    def _with(self, batch, images: torch.Tensor):
        if self.images_at is None:
            return images
        return (*batch[: self.images_at], images, *batch[self.images_at + 1:])

    def __iter__(self):
        if self.device.type != "cuda":
            for batch in self.loader:
                yield self._with(batch, self._images(batch).to(self.device))
            return
        stream = torch.cuda.Stream(self.device)
        batches = iter(self.loader)

        def copy_next():
            batch = next(batches, None)
            if batch is None:
                return None
            with torch.cuda.stream(stream):
                return self._with(batch, self._images(batch).to(self.device, non_blocking=True))

        upcoming = copy_next()
        while upcoming is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
            current = upcoming
            self._images(current).record_stream(torch.cuda.current_stream(self.device))  # the compute stream's now
            upcoming = copy_next()
            yield current


def device_input(encoder: ImageEncoder, images: torch.Tensor) -> torch.Tensor:
    """uint8 images on the device -> the model's input: scaled and normalised there, channels_last
    on CUDA (the module is converted to match)."""
    x = encoder.transform.normalise(images)
    return x.contiguous(memory_format=torch.channels_last) if images.device.type == "cuda" else x


class PreparedTiles(Dataset):
    def __init__(self, images: Sequence[Any], transform: TileTransform, start: int):
        self.images = images
        self.transform = transform
        self.start = start

    def __len__(self) -> int:
        return len(self.images) - self.start

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform.prepare(self.images[self.start + index])


def embed_split(
    encoder: ImageEncoder | InstrumentEncoder,
    source: TileSource,
    fingerprint: str,
    split: str,
    cache: EmbeddingCache,
    options: ExtractOptions,
    dense: bool = False,
) -> tuple[CachedEmbeddings, bool]:
    """(embeddings, computed_now). Reads the cache; extracts (resuming) only what is missing.
    `dense`: one feature map per image (n, channels, h, w), kept as float16 in shards of
    DENSE_SHARD images (segmentation), instead of one embedding per image."""
    identity = encoder.cache_identity() + ("|dense-v1" if dense else "")
    if encoder.reads_pixels:
        identity += f"|{options.precision}"
    key = cache.key(identity, fingerprint, split)
    label = f"{source.name}/{split}"
    cached = cache.load(key)
    if cached is not None:
        return refuse_constant(cached, encoder, label, dense, lambda: source.images(split)), False
    with cache.lock(key):
        cached = cache.load(key)  # another process may have finished it meanwhile
        if cached is not None:
            return refuse_constant(cached, encoder, label, dense, lambda: source.images(split)), False
        meta = {"model": encoder.info.name, "weights_sha256": encoder.info.weights_sha256,
                "dataset": source.name, "dataset_fingerprint": fingerprint, "split": split}
        started = time.perf_counter()
        n = len(source.images(split))
        writer = cache.writer(key, n, np.float16, DENSE_SHARD) if dense else cache.writer(key, n)
        item_key = f"{fingerprint}:{split}"
        if not encoder.reads_pixels and dense:
            writer.add(encoder.embed_dense(source.latents(split), source.masks(split), len(source.class_names()),
                                           item_key), encoder.info.name)
        elif not encoder.reads_pixels:
            writer.add(encoder.embed(n, source.latents(split), item_key=item_key), encoder.info.name)
        else:
            _run_image_encoder(encoder, source.images(split), writer, options, label, dense)
        elapsed = time.perf_counter() - started
        computed = writer.n_items - writer.start
        meta.update({"embed_s": round(elapsed, 3), "resumed_from": writer.start,
                     "items_per_s": round(computed / elapsed, 2) if elapsed > 0 and computed else None,
                     "device": options.device, "batch_size": options.batch_size,
                     "precision": options.precision if encoder.reads_pixels else None})
        return refuse_constant(writer.finish(meta), encoder, label, dense, lambda: source.images(split)), True


def refuse_constant(cached: CachedEmbeddings, encoder: ImageEncoder | InstrumentEncoder, label: str,
                    dense: bool, images: Callable[[], Sequence]) -> CachedEmbeddings:
    """The embeddings, unless a model that reads pixels gave every image the same one: a model that
    ignores its input scores chance on every task and would sit on the board as if it were a result
    (zeroed or mis-mapped weights, a norm layer of zero scale). HarnessError (one line) then; the
    entry stays cached, so a rerun refuses it again without extracting. A normal model differs from
    its first embedding within the first chunk read, so the check costs one chunk. `images`: the
    split's images, read only when the embeddings are all one; images that are all one (a folder of
    copies) rightly give one embedding, and that is the data's doing, not the model's."""
    embeddings = cached.embeddings
    if dense or not encoder.reads_pixels or len(embeddings) < MIN_IMAGES_FOR_CONSTANT_CHECK:
        return cached
    if not one_embedding([embeddings]) or all_the_same_image(images()):
        return cached
    raise blind_model(encoder.info.name, f"all {len(embeddings)} images of {label}")


def one_embedding(arrays: Sequence[np.ndarray]) -> bool:
    """Whether every row of every array (n, dim) is the first row (within float noise), read a chunk
    at a time until one differs: for a model that sees its input, within the first chunk."""
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return False
    first = np.asarray(arrays[0][0], dtype=np.float64)
    tolerance = 1e-6 * max(1.0, float(np.abs(first).max()))
    for array in arrays:
        for start in range(0, len(array), 4096):
            if np.abs(np.asarray(array[start:start + 4096], dtype=np.float64) - first).max() > tolerance:
                return False
    return True


def blind_model(name: str, what: str) -> HarnessError:
    """The one line for a model that gave `what` (all the images of a split, all the tiles of a
    dataset's slides) one embedding."""
    return HarnessError(f"{name} gives the same embedding to {what}: it ignores its input (zeroed or mis-mapped "
                        "weights?), so it is not scored; check the checkpoint's tensors and the card's pooling")


def all_the_same_image(images: Sequence) -> bool:
    """Whether every image holds the pixels of the first (read until one differs: for a split of
    different images, the second)."""
    first = tile_pixels(images[0])
    for index in range(1, len(images)):
        image = tile_pixels(images[index])
        if image.shape != first.shape or not np.array_equal(image, first):
            return False
    return True


def _run_image_encoder(encoder: ImageEncoder, images, writer, options: ExtractOptions, label: str,
                       dense: bool = False) -> None:
    dataset = PreparedTiles(images, encoder.transform, writer.start)
    if len(dataset) == 0:
        return
    loader = DataLoader(
        dataset, batch_size=options.batch_size, shuffle=False, num_workers=options.num_workers,
        pin_memory=on_cuda(options.device), prefetch_factor=4 if options.num_workers else None,
    )
    device = torch.device(options.device)
    module = encoder.module
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    forward = module.feature_map if dense else module
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if options.precision == "bf16" else nullcontext()
    with progress_bar(f"embedding {label} with {encoder.info.name}", len(images)) as advance:
        advance(writer.start)
        with torch.inference_mode(), autocast:
            for batch in DevicePrefetcher(loader, device):
                x = device_input(encoder, batch)  # uint8 crossed the bus, not float
                embeddings = forward(x).float().cpu().numpy()
                writer.add(embeddings, encoder.info.name)
                advance(len(batch))

