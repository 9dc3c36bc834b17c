"""<data-root>/<path>/<split>/<class>/<image files>: for datasets behind a registration form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import HarnessError
from harness.registry import ImageFolderDataset
from harness.sources.base import Availability, TileSource, digest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


class FolderImages:
    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as error:
            raise HarnessError(f"{path}: unreadable image ({error}); remove or replace the file") from None


class ImageFolderSource(TileSource):
    spec: ImageFolderDataset

    @property
    def root(self) -> Path:
        return (self.context.data_root / self.spec.path).expanduser()

    def availability(self) -> Availability:
        missing = [s for s in self.spec.splits if not (self.root / s).is_dir()]
        if not missing:
            return Availability(ok=True)
        how = f" {self.spec.instructions.strip()}" if self.spec.instructions else ""
        where = f" ({self.spec.homepage})" if self.spec.homepage else ""
        return Availability(
            ok=False,
            reason=f"no {', '.join(missing)} folder under {self.root}: the data needs manual download{where}.{how} "
                   "Put it at that path or pass --data-root",
        )

    def class_names(self) -> list[str]:
        if self.spec.classes:
            return list(self.spec.classes)
        return sorted(p.name for p in (self.root / self.spec.splits[0]).iterdir() if p.is_dir())

    def _items(self, split: str) -> list[tuple[Path, int]]:
        items = []
        for index, name in enumerate(self.class_names()):
            folder = self.root / split / name
            if folder.is_dir():
                items += [(p, index) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not items:
            raise HarnessError(f"{self.root / split}: no images in <class>/ subfolders {self.class_names()}")
        return items

    def fingerprint(self) -> str:
        files = {s: [(p.relative_to(self.root).as_posix(), p.stat().st_size) for p, _ in self._items(s)]
                 for s in self.spec.splits}
        return digest({"root": str(self.root), "files": files})

    def split_names(self) -> list[str]:
        return list(self.spec.splits)

    def labels(self, split: str) -> np.ndarray:
        return np.array([label for _, label in self._items(split)], dtype=np.int64)

    def images(self, split: str) -> FolderImages:
        return FolderImages([path for path, _ in self._items(split)])

    def download(self) -> str:
        raise HarnessError(self.availability().reason if not self.availability().ok
                           else f"{self.name}: already present at {self.root}")
