"""Plug-ins by name: task families (tasks/), distillation methods (distillers/) and, with their
schema beside them, dataset source kinds (harness/sources/). One rule for all: a class is entered
under its `name`, once; a second class under a taken name is refused."""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T", bound=type)


def register_plugin(table: dict[str, T], plugin: T, base: type, kind: str) -> T:
    """Enter `plugin` (a subclass of `base`) in `table` under `plugin.name`; returns it (so this can
    back a class decorator). Registering the same class again is a no-op."""
    if not (isinstance(plugin, type) and issubclass(plugin, base)):
        raise TypeError(f"{plugin!r} is not a {base.__name__} subclass")
    known = table.get(plugin.name)
    if known is not None and known is not plugin:
        raise ValueError(f"{kind} '{plugin.name}' is already registered ({known.__module__}.{known.__qualname__})")
    table[plugin.name] = plugin
    return plugin


def load_plugin_modules(group: str, register: Callable[[Any], object] | None = None) -> list:
    """Import what other installed packages declare under the entry-point `group`
    (pathology_harness.families, .sources, .methods): each names a module that registers its
    plug-ins when imported, or a class that `register` enters. Returns the loaded objects. A
    plug-in that fails to load or to register (written for another version of the harness, or
    taking a name already taken) is left out with one warning naming its package: it stopped
    every command, `harness list` and `harness --help` included, with its traceback."""
    from importlib.metadata import entry_points

    loaded = []
    for entry in entry_points(group=group):
        try:
            plugin = entry.load()
            if register is not None:
                register(plugin)
        except Exception as error:  # noqa: BLE001 - another package's failure, said in one line
            package = getattr(entry.dist, "name", None) or "its package"
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            sys.stderr.write(f"warning: plug-in '{entry.name}' ({entry.value}) of {package} is left out: "
                             f"{type(error).__name__}{': ' + reason if reason else ''}; fix or uninstall {package}\n")
            continue
        loaded.append(plugin)
    return loaded
