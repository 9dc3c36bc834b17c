"""Reading a user's YAML file (tasks.yaml and --include files, card.yaml, distill.yaml): one reader,
so every file is refused the same way, in one line that names the file and the place.

Beyond yaml.safe_load it refuses what safe_load lets through silently: bytes that are not UTF-8,
and the same key twice in one mapping (a task defined twice in one file, where the last
definition would quietly win).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.bounded_read import NotRegularFile, read_regular_file
from harness.errors import HarnessError


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a mapping that repeats a key is an error naming the key and both lines."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let safe_load report it as it does
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice (lines {first} and {line}): keep one", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> data; `where` names it in the error (a file, or a flag such as --set)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise HarnessError(f"{where}: malformed YAML{place}: {problem}") from None


# far above any file of settings (tasks.yaml is about 50 kB): a path that names something else
# (a slide, a disk image, /dev/zero) is refused instead of read into memory
MAX_YAML_BYTES = 16 * 2**20


def read_yaml(path: Path, what: str) -> Any:
    """The data of a YAML file; `what` says what the file is for ("registry file", "model card").
    Only a regular file of at most MAX_YAML_BYTES is read: a FIFO under the name (a submitted
    checkpoint's card.yaml, say) blocked the reader for ever, and /dev/zero filled the memory."""
    path = Path(path)
    try:
        data = read_regular_file(path, MAX_YAML_BYTES)
        if len(data) > MAX_YAML_BYTES:
            raise HarnessError(f"{path}: {what} is larger than {MAX_YAML_BYTES // 2**20} MiB, far more than a YAML "
                               "file of settings: check the path")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{path}: {what} not found: check the path") from None
    except NotRegularFile:
        raise HarnessError(f"{path}: {what} is not a regular file (a folder, a FIFO or a device): give the path of "
                           "a YAML file") from None
    except UnicodeDecodeError as error:
        raise HarnessError(f"{path}: {what} is not UTF-8 text (byte {error.start} is not valid): "
                           "save it as UTF-8 YAML") from None
    except OSError as error:
        raise HarnessError(f"{path}: cannot read {what}: {error.strerror or error}") from None
    return parse_yaml(text, str(path))
