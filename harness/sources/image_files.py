"""Opening one image file of a dataset (a tile, a region, a mask): a regular file, an image PIL can
decode, at most MAX_IMAGE_PIXELS. Whatever is wrong with it is one line naming the file and what to
do; nothing larger than the bound is decoded, and a FIFO or a device is never opened (a read of
either can block for ever). Whole slides are not read here: OpenSlide reads them a region at a time.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from harness.bounded_read import NotRegularFile, open_regular_file
from harness.errors import HarnessError

# PIL's own refusal (twice the size at which it starts to warn of a decompression bomb; about 13,400
# px square): no image that PIL would decode is refused here, and what is refused is named.
MAX_IMAGE_PIXELS = 178_956_970


def is_hidden(path: Path) -> bool:
    """A file or folder no dataset means: a dot-name (macOS's `._name.png` AppleDouble copies, which
    an archive made on a Mac carries beside every image, `.ipynb_checkpoints`, `.DS_Store`) or the
    `__MACOSX` folder of such an archive. Left alone, a `._` copy failed its task as an unreadable
    image and `.ipynb_checkpoints` became a class."""
    return path.name.startswith(".") or path.name == "__MACOSX"


@contextmanager
def open_image(path: Path, fix: str = "remove or replace the file") -> Iterator[Image.Image]:
    """The image at `path`, opened lazily (its header read, its pixels when the caller asks), and
    closed on leaving. `fix` ends every error message: what the user should do with the file."""
    try:
        handle = open_regular_file(path)
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file; {fix}") from None
    except NotRegularFile:
        raise HarnessError(f"{path}: not a regular file (a folder, FIFO or device), not read; {fix}") from None
    except OSError as error:
        raise HarnessError(f"{path}: cannot read it ({error.strerror or error}); {fix}") from None
    with handle:  # PIL leaves a file it was handed open
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, in one line
                image = Image.open(handle)
        except Image.DecompressionBombError as error:
            raise HarnessError(f"{path}: {too_large(bomb_size(error))}; {fix}") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise HarnessError(f"{path}: unreadable image ({error}); {fix}") from None
        with image:
            checked_image(image, str(path), f"; {fix}")
            try:
                yield image
            except (OSError, SyntaxError, ValueError) as error:  # decoding: a truncated or corrupt file
                raise HarnessError(f"{path}: unreadable image ({error}); {fix}") from None


SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # one channel of more than 8 bits (a 16-bit PNG or TIFF)


def rgb_image(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB. A one-channel image of 16 bits keeps its top 8 bits: PIL's own
    convert clips it at 255, so a 16-bit grey tile read as nearly all white."""
    if image.mode in SIXTEEN_BIT:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        return Image.fromarray((wide >> 8).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def tile_pixels(item) -> np.ndarray:
    """An item of a source's images (a PIL image, or an HWC uint8 array as the synthetic sources
    give them) as an HWC array of 8-bit RGB."""
    return np.asarray(rgb_image(item) if isinstance(item, Image.Image) else item)


def too_large(size: str) -> str:
    return f"{size}, more than a dataset image may have ({MAX_IMAGE_PIXELS:,} px)"


def bomb_size(error: Exception) -> str:
    """The size PIL's refusal to decode an image gives ("Image size (N pixels) exceeds limit ...")."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1)):,} px" if found else "too large to decode"


def checked_image(image: Image.Image, where: str, then: str = "") -> Image.Image:
    """An image (opened here, or decoded by another library: a Hub dataset's row): refused, naming
    `where` (and ending with `then`), when it is larger than a dataset image may be."""
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise HarnessError(f"{where}: {too_large(f'{image.width} x {image.height} px')}{then}")
    return image
