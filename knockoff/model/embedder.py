"""The embedding model: uint8 RGB images in, L2-normalised embeddings out.

Normalisation lives inside the model, so training, export and screening all feed the same
uint8 (N, H, W, 3) pixels and the ONNX graph needs no preprocessing outside it.
`forward_features` (pixels -> pooled backbone features) and `forward_head` (features ->
embedding) are split as in timm, so the frozen-backbone baseline is the same class with no
projection head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from knockoff.model.backbone import Pretrained, create_backbone, frozen_module_names, preprocessing_of


@dataclass(frozen=True)
class EmbedderConfig:
    """Everything needed to rebuild the model and its preprocessing (saved in checkpoints)."""

    backbone: str = "tf_efficientnet_lite0"
    embedding_dim: int | None = 256  # None: no projection head, the frozen-backbone baseline
    dropout: float = 0.0
    frozen_levels: int = 0
    input_size: int = 224
    mean: tuple[float, ...] = field(default=(0.5, 0.5, 0.5))
    std: tuple[float, ...] = field(default=(0.5, 0.5, 0.5))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EmbedderConfig:
        values = dict(values)
        values["mean"] = tuple(values["mean"])
        values["std"] = tuple(values["std"])
        return cls(**values)


class Embedder(nn.Module):
    def __init__(self, config: EmbedderConfig, backbone: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        feature_dim = backbone.num_features
        if config.embedding_dim is None:
            self.head = nn.Identity()
            self.embedding_dim = feature_dim
        else:
            # Linear + BatchNorm ("BNNeck"): the BN centres the embedding space so the
            # cosine geometry the FAISS inner-product index uses is well spread.
            self.head = nn.Sequential(
                nn.Dropout(config.dropout),
                nn.Linear(feature_dim, config.embedding_dim, bias=False),
                nn.BatchNorm1d(config.embedding_dim),
            )
            self.embedding_dim = config.embedding_dim
        self.register_buffer("mean", 255.0 * torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", 255.0 * torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self._frozen = frozen_module_names(backbone, config.frozen_levels)
        for name in self._frozen:
            for parameter in backbone.get_submodule(name).parameters(recurse=False):
                parameter.requires_grad_(False)
        self.train()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, H, W), standardised, channels-last in memory."""
        pixels = images.permute(0, 3, 1, 2).float()
        return ((pixels - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(images))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(features), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def train(self, mode: bool = True) -> Embedder:
        super().train(mode)
        # Frozen levels keep their ImageNet batch-norm statistics too.
        for name in self._frozen:
            module = self.backbone.get_submodule(name)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def create_embedder(config: EmbedderConfig, pretrained: Pretrained = "offline", input_size: int | None = None) -> Embedder:
    """Build an Embedder; mean and std come from the backbone's weights, and so does the input
    size unless `input_size` is given (a larger input keeps stitching, logos and labels)."""
    backbone = create_backbone(config.backbone, pretrained)
    default_size, mean, std = preprocessing_of(backbone)
    input_size = input_size or default_size
    config = EmbedderConfig(**{**config.to_dict(), "input_size": input_size, "mean": mean, "std": std})
    return Embedder(config, backbone).to(memory_format=torch.channels_last)
