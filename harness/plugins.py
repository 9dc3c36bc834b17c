"""Plug-ins by name: task families (tasks/), distillation methods (distillers/) and, with their
schema beside them, dataset source kinds (harness/sources/). One rule for all: a class is entered
under its `name`, once; a second class under a taken name is refused."""

from __future__ import annotations

from typing import TypeVar

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


def load_plugin_modules(group: str) -> list:
    """Import what other installed packages declare under the entry-point `group`
    (pathology_harness.families, .sources, .methods): each names a module that registers its
    plug-ins when imported, or a class the caller registers. Returns the loaded objects."""
    from importlib.metadata import entry_points

    return [entry.load() for entry in entry_points(group=group)]
