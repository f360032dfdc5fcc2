"""The one backbone contract both harnesses consume, and its registry.

Contract (a plain ``nn.Module``)::

    feats = backbone(images)          # {"s4": (B, C4, H/4, W/4), "s8": ..., "s16": ..., "s32": ...}
    backbone.out_channels             # {"s4": C4, ...}
    backbone.out_strides              # {"s4": 4, ...}
    backbone.num_layers               # layer ids run from 0 to num_layers + 1 (lr decay)
    backbone.layer_id(param_name)     # -> int in [0, num_layers + 1]
    backbone.takes_weight_decay(param_name, param) -> bool
    backbone.load_pretrained(path, source="auto") -> LoadReport
    backbone.size_divisibility        # inputs are padded to a multiple of this
    backbone.square_pad               # > 0: pad every input to this square size (ViT det recipe)

Every factory accepts ``img_size`` (the fine-tune input side) and ``drop_path_rate``, so the harness
configs can pass them to any backbone; a backbone that needs neither ignores them.

Backbones are registered by name (``@register_backbone("mae_vit_l")``), or as a family named by a prefix
(``@register_backbone_family("timm")``: ``timm:<model>``), in plug-in modules: every module in the
top-level ``backbones/`` package is imported on first use, as is every module listed in
``$MAE_TRANSFER_PLUGINS`` (comma-separated). ``build_backbone("my.module:name")`` imports ``my.module``
first, so a backbone living anywhere on the path works in every tool. This module knows no plug-in: the
ViT pyramid (``vit_backbone``) and timm's models (``backbones/timm_models.py``) register like any other.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from typing import Any, Callable

import torch
import torch.nn as nn

from .checkpoints import LoadReport
from .errors import CheckpointError, ConfigError
from .optim import takes_weight_decay
from .registry import Registry

BACKBONES = Registry("backbone")
FAMILIES = Registry("backbone family")
_PLUGINS_LOADED = False


class Backbone(nn.Module):
    """Base class spelling out the contract; subclasses set the attributes and implement forward."""

    out_channels: dict[str, int]
    out_strides: dict[str, int]
    num_layers: int = 0
    size_divisibility: int = 32
    square_pad: int = 0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def layer_id(self, name: str) -> int:
        return self.num_layers + 1

    def takes_weight_decay(self, name: str, param: torch.Tensor) -> bool:
        return takes_weight_decay(name, param)

    def load_pretrained(self, path: str, source: str = "auto") -> LoadReport:  # pragma: no cover - interface
        raise CheckpointError(f"{type(self).__name__} cannot load checkpoints")


def register_backbone(
    name: str | None = None, arch: dict[str, Any] | None = None, builds: type | None = None
) -> Callable:
    """Decorator for a factory ``fn(**overrides) -> Backbone``, registered as ``name`` (default: the
    function's name). ``arch``: the constructor arguments the factory fixes (width, depth, ...), which recipe
    cards read without building the model (``backbone_settings``); ``builds``: the class it constructs from
    ``arch`` and the overrides, whose constructor's keywords are the ones the factory takes."""
    return BACKBONES.register(name, arch, builds)


def register_backbone_family(prefix: str) -> Callable:
    """Decorator for a factory ``fn(model_name, **overrides) -> Backbone`` that builds every backbone named
    ``<prefix>:<model_name>`` (``timm:convnext_tiny``). Its keywords are a fixed set: ``apply_backbone_args``
    drops the rest of a config's backbone node (a config written for the ViT holds window sizes, taps)."""
    return FAMILIES.register(prefix)


def load_plugins() -> None:
    """Import the ``backbones`` package's modules and ``$MAE_TRANSFER_PLUGINS`` (once)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    try:
        pkg = importlib.import_module("backbones")
    except ModuleNotFoundError:
        pkg = None
    if pkg is not None:
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"backbones.{info.name}")
    for mod in filter(None, os.environ.get("MAE_TRANSFER_PLUGINS", "").split(",")):
        importlib.import_module(mod.strip())


def _family(name: str) -> tuple[Callable, str] | None:
    """(family factory, model name) for a ``<prefix>:<model>`` name whose prefix is a registered family."""
    prefix, sep, model = name.partition(":")
    return (FAMILIES.get(prefix), model) if sep and prefix in FAMILIES else None


def build_backbone(name: str, **overrides: Any) -> Backbone:
    """Build a registered backbone by name (``module.path:name``, or ``<family>:<model>``) with constructor
    overrides."""
    load_plugins()
    family = _family(name)
    if family is not None:
        factory, model = family
        _check_keywords(name, factory, overrides, family=True)
        return factory(model, **overrides)
    if ":" in name:
        module, name = name.split(":", 1)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"backbone plug-in module {module!r} not found ({e})") from None
    factory = BACKBONES.get(name)
    _check_keywords(name, factory, overrides)
    try:
        return factory(**overrides)
    except TypeError as e:  # a factory taking **kwargs passed a user's key on to a callee that takes none
        bad = [k for k in overrides if f"unexpected keyword argument '{k}'" in str(e)]
        if not bad:
            raise  # a bug, not the user's key: keep the traceback
        raise ConfigError(f"backbone {name!r}: {e}") from None


def _keywords(factory: Callable, family: bool = False) -> list[inspect.Parameter] | None:
    """The keyword parameters a factory takes (those of the class it ``builds``, if it names one); None when
    open-ended (``**kwargs``). A ``family`` factory's first parameter is the model name, not a keyword."""
    target = getattr(factory, "builds", None) or factory
    params = list(inspect.signature(target).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return params[1:] if family else params


def _check_keywords(name: str, factory: Callable, overrides: dict[str, Any], family: bool = False) -> None:
    """A key the backbone does not take is the user's error (one line); a TypeError raised while building
    is a bug and keeps its traceback. A factory taking ``**kwargs`` (without ``builds``) is checked when
    called."""
    params = _keywords(factory, family)
    if params is None:
        return
    unknown = sorted(set(overrides) - {p.name for p in params})
    if unknown:
        raise ConfigError(
            f"backbone {name!r} takes no {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(p.name for p in params)}"
        )


def backbone_settings(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments a registered backbone would get (its factory's ``arch``, then the built
    class's defaults, then ``overrides``, resolved by the class's ``resolve_settings``) without building it:
    what a recipe card reports. Empty for a backbone whose factory declares no ``arch`` (a family, a ConvNet
    plug-in)."""
    load_plugins()
    if _family(name) is not None:
        return {}
    factory = BACKBONES.get(name.split(":")[-1])
    builds = getattr(factory, "builds", None)
    if getattr(factory, "arch", None) is None or builds is None:
        return {}
    params = inspect.signature(builds.__init__).parameters.values()
    settings = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    settings.update(factory.arch)
    settings.update(overrides)
    return builds.resolve_settings(settings) if hasattr(builds, "resolve_settings") else settings


def check_backbone_name(name: str) -> None:
    """A ConfigError naming the registered backbones when ``name`` is none of them and of no family (a
    ``module:name`` plug-in is checked when it is built)."""
    load_plugins()
    if _family(name) is None and ":" not in name:
        BACKBONES.get(name)


def backbone_keys(name: str) -> set[str] | None:
    """The constructor keywords of a family backbone (``timm:<name>``: image size and drop path), so that a
    config written for another backbone can drop the rest; None for a named backbone (its config's keys are
    checked against it when it is built)."""
    load_plugins()
    family = _family(name)
    if family is None:
        return None
    return {p.name for p in _keywords(family[0], family=True) or ()}


def backbone_channels(name: str, **overrides: Any) -> list[int]:
    """The widths of a backbone's maps, finest first, from a copy built without memory (meta device)."""
    with torch.device("meta"):
        return list(build_backbone(name, **overrides).out_channels.values())


def registered_backbones() -> list[str]:
    """Every registered name, and each family as ``<prefix>:<model>``."""
    load_plugins()
    return BACKBONES.names() + [f"{prefix}:<model>" for prefix in FAMILIES.names()]


def backbone_for(embed_dim: int, depth: int, patch_size: int) -> str | None:
    """The registered backbone of this encoder shape (its factory's ``arch``): the one of its patch size,
    else a patch-16 one (a patch-14 encoder runs as patch 16, as ViT-H)."""
    load_plugins()
    archs = {n: getattr(BACKBONES.get(n), "arch", None) or {} for n in BACKBONES.names()}
    same = [n for n, a in archs.items() if (a.get("embed_dim"), a.get("depth")) == (embed_dim, depth)]
    for patch in (patch_size, 16):
        match = next((n for n in same if archs[n].get("patch_size") == patch), None)
        if match:
            return match
    return None


def default_taps(depth: int) -> tuple[int, ...]:
    """The block groups of a plain encoder: the last block of each of 4 equal groups (B: 2, 5, 8, 11;
    L: 5, 11, 17, 23); shallower than 4 blocks, groups share blocks (depth 2: 0, 0, 0, 1)."""
    return tuple(max(0, (g + 1) * depth // 4 - 1) for g in range(4))
