"""`--model SPEC` resolved once: what the model is, what results will call it and where they go.

Every caller asks this module (the CLI before a run, the runner, submissions, the distillers'
scoring, the Hub queue), as timm's `parse_model_name` is asked for a model string. SPEC is one of:

  random-noise | synth-oracle[-tissue|-grade]   instrument models (synthetic suite)
  timm:<name>                                   a timm architecture (pretrained weights from the Hub)
  hf-hub:<org>/<repo>                           a timm model hosted on the Hub
  <known name>                                  a model of zoo.py, e.g. uni, virchow2, colour-stats
  <path>                                        a local checkpoint directory or file (checkpoint.py)

Resolving reads no weights; only a checkpoint's hash (`weights_sha256`) reads its file, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from harness.errors import HarnessError
from harness.models.card import DEFAULT_MAX_PARAMETERS, ModelCard
from harness.models.identity import WeightsKind, model_slug
from harness.models.instruments import INSTRUMENTS
from harness.models.zoo import find_known_model

DEFAULT_MODEL = "timm:vit_tiny_patch16_224"

ModelSource = Literal["instrument", "timm", "hf-hub", "known", "checkpoint"]


@dataclass(frozen=True)
class LoadOptions:
    random_init: bool = False  # score the architecture untrained (labelled random-init)
    random_fallback: bool = False  # the default model: random-init when weights are unreachable
    device: str = "cpu"
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # a checkpoint card's architecture above this is refused unbuilt


@dataclass(frozen=True)
class ModelSpec:
    spec: str  # as the user wrote it
    source: ModelSource
    name: str  # what results record: the spec, or a checkpoint card's `name`
    weights: WeightsKind  # the weights the run plans to score (a fallback may still turn pretrained to random-init)
    card: ModelCard | None = None  # a known model's zoo card, or a checkpoint's own card (before `base:` is merged)
    checkpoint: Path | None = None  # the weights file of a local checkpoint
    card_path: Path | None = field(default=None, compare=False)
    known_sha256: str | None = field(default=None, compare=False, repr=False)  # the checkpoint's hash, if already taken

    @property
    def slug(self) -> str:
        return model_slug(self.name, self.weights)

    @cached_property
    def weights_sha256(self) -> str | None:
        """sha256 of a checkpoint's weights file (read once per state of the file: weights_digest.py);
        None for other models, whose hash is that of the built network (known only after loading)."""
        if self.checkpoint is None:
            return None
        if self.known_sha256 is not None:
            return self.known_sha256
        from harness.models.weights_digest import weights_sha256
        from harness.sources.base import default_cache_dir

        return weights_sha256(self.checkpoint, default_cache_dir())

    @cached_property
    def card_sha256(self) -> str | None:
        """The digest of what in the card decides the embeddings (card.card_sha256), after a checkpoint's
        `base:` is merged; None where the model has no card before it is built (timm:, hf-hub:, the
        instruments: their weights and transform come with the spec), or its card cannot be resolved
        (loading it then says why)."""
        from harness.models.card import card_sha256
        from harness.models.zoo import resolve_card

        if self.card is None or self.source not in ("known", "checkpoint"):
            return None
        try:
            card = resolve_card(self.card, self.card_path) if self.source == "checkpoint" else self.card
        except HarnessError:
            return None
        return card_sha256(card)


def timm_has_architecture(name: str) -> bool:
    """timm.is_model(name). A name found in timm's list of architectures, kept in the cache per
    timm version, is answered without importing timm (about 3 s: torchvision and torch's compiler
    come with it), so that a run that reuses its results starts fast; any other name (a deprecated
    alias, a typo) is asked of timm itself. The list is written the first time timm is imported."""
    from importlib.metadata import version

    from harness.atomic_write import write_text_atomic
    from harness.sources.base import default_cache_dir

    listing = default_cache_dir() / f"timm-{version('timm')}-architectures.txt"
    try:
        if name.split(".", 1)[0] in set(listing.read_text().split()):
            return True
    except OSError:
        pass
    import timm

    try:
        write_text_atomic(listing, "\n".join(timm.list_models()) + "\n")
    except OSError:  # a read-only cache: the check still works, only slower next time
        pass
    return timm.is_model(name)


def resolve_model(spec: str, options: LoadOptions = LoadOptions()) -> ModelSpec:
    """SPEC -> ModelSpec, or one line saying what is wrong with it (no weights are read)."""
    if not spec.strip():
        raise HarnessError("--model '': empty model spec (an empty path would mean the current folder)")
    if spec in INSTRUMENTS:
        return ModelSpec(spec, "instrument", spec, "instrument")
    if spec.startswith("timm:"):
        if not timm_has_architecture(spec.removeprefix("timm:")):
            raise HarnessError(f"model '{spec}': timm has no architecture '{spec.removeprefix('timm:')}': "
                               "see timm.list_models()")
        return ModelSpec(spec, "timm", spec, _planned(options))
    known = find_known_model(spec)
    if known is not None:
        loader, _, where = (known.architecture or "").partition(":")
        if loader == "builtin":  # colour-stats: a fixed function of the pixels
            return ModelSpec(spec, "known", spec, "instrument", card=known)
        if loader == "package":  # a checkpoint shipped inside the harness (synth-reference)
            from importlib.resources import files

            return _checkpoint(spec, Path(str(files("harness").joinpath(where))), builtin=True)
        return ModelSpec(spec, "known", spec, _planned(options), card=known)
    if spec.startswith("hf-hub:"):
        from harness.submissions import is_hub_id

        repository, _, revision = spec.removeprefix("hf-hub:").partition("@")  # timm reads hf-hub:ORG/MODEL@REVISION
        if not is_hub_id(repository) or (_ and not revision.strip()):
            raise HarnessError(f"model '{spec[:200]}': not a Hub model id: give hf-hub:ORG/MODEL (or "
                               "hf-hub:ORG/MODEL@REVISION)")
        return ModelSpec(spec, "hf-hub", spec, _planned(options), card=ModelCard(hub_id=repository))
    path = Path(spec).expanduser()
    if not path.exists():
        import difflib

        from harness.models.zoo import KNOWN_MODELS

        close = difflib.get_close_matches(spec, [*INSTRUMENTS, *KNOWN_MODELS], n=1)
        raise HarnessError(
            f"unknown model '{spec}'{f' (did you mean {close[0]!r}?)' if close else ''}: not a known model and no such "
            "file or directory; give timm:<name>, hf-hub:<org>/<repo>, a known model (see `harness list`), "
            "random-noise, synth-oracle, or the path of a checkpoint"
        )
    return _checkpoint(spec, path)


def _checkpoint(spec: str, path: Path, builtin: bool = False) -> ModelSpec:
    from harness.models.card import read_card
    from harness.models.weight_files import locate_checkpoint

    weights, card_path = locate_checkpoint(path)  # a folder without weights or card.yaml
    card = read_card(card_path)  # a card that is not UTF-8, not YAML, or has unknown keys
    name = card.name or str(path)
    if not builtin and claims_builtin(name):
        raise HarnessError(f"{card_path}: model card key 'name': '{name}' is the name of a built-in model (its "
                           "results would replace that model's); choose another name")
    return ModelSpec(spec, "checkpoint", name, "checkpoint", card=card, checkpoint=weights, card_path=card_path)


def builtin_slugs() -> set[str]:
    """The result folders of the models the harness names itself (instruments, the zoo, the
    default model, any timm: or hf-hub: spec): no checkpoint may take one of them."""
    from harness.models.zoo import KNOWN_MODELS

    return {model_slug(name) for name in [*INSTRUMENTS, *KNOWN_MODELS, DEFAULT_MODEL]}


def claims_builtin(name: str) -> bool:
    slug = model_slug(name)
    return slug in builtin_slugs() or slug.startswith(("timm--", "hf-hub--"))


def _planned(options: LoadOptions) -> WeightsKind:
    """Hub weights, unless untrained ones are asked for, or allowed as a fallback and the Hub is
    unreachable (the loader may still find them in the local cache: it has the last word)."""
    if options.random_init:
        return "random-init"
    if options.random_fallback:
        from harness.hub_access import hub_reachable

        if not hub_reachable():
            return "random-init"
    return "pretrained"
