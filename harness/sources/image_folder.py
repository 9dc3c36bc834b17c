"""<data-root>/<path>/<split>/<class>/<image files>: for datasets behind a registration form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from rich.markup import escape

from harness.errors import HarnessError
from harness.registry import ImageFolderDataset
from harness.sources.base import Availability, TileSource, digest, file_state
from harness.sources.image_files import is_hidden, open_image, rgb_image
from harness.sources.split_copies import refuse_copies_across_splits
from harness.terminal import console

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def holds_images(folder: Path) -> bool:
    """Whether `folder` is a folder, not hidden, with an image among its first 1,000 entries (a class folder)."""
    return not is_hidden(folder) and folder.is_dir() and any(is_image_file(p) for p in list(folder.iterdir())[:1000])


def is_image_file(path: Path) -> bool:
    """A dataset image by its name: an image suffix, and not hidden (is_hidden)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(path)


class FolderImages:
    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        with open_image(self.paths[index]) as image:
            return rgb_image(image)


class ImageFolderSource(TileSource):
    spec: ImageFolderDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        self._checked = False  # no image in two splits (prepare)
        self._listed: dict[str, list[tuple[Path, int]]] = {}  # split -> its items, listed once per run
        self._prints: dict[str, str] = {}  # split -> its fingerprint, its files' states read once per run

    @property
    def root(self) -> Path:
        return (self.context.data_root / self.spec.path).expanduser()

    def availability(self) -> Availability:
        missing = [s for s in self.spec.splits if not (self.root / s).is_dir()]
        if not missing:
            return Availability(ok=True)
        layout = f"{self.root}/<split>/<class>/<image> with splits {', '.join(self.spec.splits)}"
        named = self._named_otherwise(missing)
        if named:  # 'Train' where the splits say 'train': the data is there, under another spelling
            return Availability(ok=False, reason=f"no {', '.join(missing)} folder under {self.root}, but "
                                                 f"{', '.join(named)}: split folders are matched by their exact "
                                                 "names; rename the folders, or name the splits as they are spelt "
                                                 "(the dataset's `splits`)")
        found = self._misplaced()
        if found:  # the data is there, in another layout: say which one is expected
            return Availability(ok=False, reason=f"{found}, but no {', '.join(missing)} folder: this dataset "
                                                 f"reads {layout}; move the class folders under those split folders")
        how = f" {self.spec.instructions.strip()}" if self.spec.instructions else ""
        where = f" ({self.spec.homepage})" if self.spec.homepage else ""
        return Availability(
            ok=False,
            reason=f"no {', '.join(missing)} folder under {self.root} (expected {layout}): the data needs manual "
                   f"download{where}.{how} Put it at that path or pass --data-root",
        )

    def _named_otherwise(self, missing: list[str]) -> list[str]:
        """Folders at the root whose names match a missing split's but for case or surrounding spaces."""
        if not self.root.is_dir():
            return []
        wanted = {name.strip().lower(): name for name in missing}
        return [f"'{p.name}'" for p in sorted(self.root.iterdir())[:10_000]
                if p.is_dir() and p.name not in self.spec.splits and p.name.strip().lower() in wanted]

    def _misplaced(self) -> str:
        """What is at the root instead of split folders: loose images, or class folders of images."""
        if not self.root.is_dir():
            return ""
        entries = sorted(self.root.iterdir())[:10_000]
        loose = [p for p in entries if p.is_file() and is_image_file(p)]
        if loose:
            return f"{self.root} holds {len(loose)} image(s) directly"
        classes = [p.name for p in entries if p.name not in self.spec.splits and holds_images(p)]
        if classes:
            return f"{self.root} holds image folders {classes[:5]}"
        return ""

    def prepare(self) -> None:
        """An image copied into two split folders is refused (split_copies), once per run."""
        if not self._checked:
            refuse_copies_across_splits({s: [p for p, _ in self._items(s)] for s in self.spec.splits}, self.root,
                                        str(self.root))
            self._checked = True

    def class_names(self) -> list[str]:
        """The declared classes, else the class folders of every split, sorted (a class with images
        in the test split only is still a class: its images are read, not dropped)."""
        if self.spec.classes:
            return list(self.spec.classes)
        return sorted({p.name for s in self.spec.splits if (self.root / s).is_dir()
                       for p in (self.root / s).iterdir() if p.is_dir() and not is_hidden(p)})

    def _items(self, split: str) -> list[tuple[Path, int]]:
        """(image, class index) of a split, in class then name order; listed once per run (labels,
        images, the fingerprints and the copies check all read it)."""
        if split not in self._listed:
            self._listed[split] = self._list(split)
        return self._listed[split]

    def _list(self, split: str) -> list[tuple[Path, int]]:
        items, absent = [], []
        for index, name in enumerate(self.class_names()):
            folder = self.root / split / name
            files = [p for p in sorted(folder.iterdir()) if is_image_file(p)] if folder.is_dir() else []
            items += [(p, index) for p in files]
            if not files:
                absent.append(name)
        if not items:
            raise HarnessError(f"{self.root / split}: no images in <class>/ subfolders {self.class_names()}")
        if absent:  # said once: the listing is kept (_items)
            console.print(f"[yellow]warning[/yellow] {escape(str(self.root / split))}: no images of class(es) "
                          f"{escape(str(absent))} in this split")
        undeclared = self._undeclared(split)
        if undeclared:
            console.print(f"[yellow]warning[/yellow] {escape(str(self.root / split))}: folder(s) "
                          f"{escape(str(undeclared[:5]))} are not among the declared classes "
                          f"{escape(str(self.class_names()))}: their images are not read (add them to "
                          "`classes`, or rename the folders)")
        return items

    def _undeclared(self, split: str) -> list[str]:
        """Folders of images in a split that no declared class names (a misspelt or renamed class)."""
        if not self.spec.classes:
            return []
        declared = set(self.spec.classes)
        return sorted(p.name for p in (self.root / split).iterdir()
                      if p.name not in declared and holds_images(p))

    def fingerprint(self) -> str:
        """The classes and every split's files (split_fingerprint)."""
        splits = {split: self.split_fingerprint(split) for split in self.spec.splits}
        return digest({"classes": self.class_names(), "splits": splits})

    def split_fingerprint(self, split: str) -> str:
        """The folder, and the split's files in order with their sizes and modification times: a copy
        of the dataset elsewhere (stain-normalised tiles under the same names) is another dataset, and
        a tile replaced in place is embedded again."""
        if split not in self._prints:
            files = [(path.relative_to(self.root).as_posix(), file_state(path)) for path, _ in self._items(split)]
            self._prints[split] = digest({"root": str(self.root), "split": split, "files": files})
        return self._prints[split]

    def split_names(self) -> list[str]:
        return list(self.spec.splits)

    def labels(self, split: str) -> np.ndarray:
        return np.array([label for _, label in self._items(split)], dtype=np.int64)

    def images(self, split: str) -> FolderImages:
        return FolderImages([path for path, _ in self._items(split)])

    def download(self) -> str:
        raise HarnessError(self.availability().reason if not self.availability().ok
                           else f"{self.name}: already present at {self.root}")
