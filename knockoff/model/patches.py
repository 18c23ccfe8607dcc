"""Local features for local evidence: the embedder's backbone cut at its stride-16 level.

uint8 (N, S, S, 3) in, L2-normalised (N, S/16, S/16, C) out: at 320 px a 20 x 20 grid of
112-dimensional features for lite0, each averaged over its 3 x 3 neighbourhood as PatchCore
does (Roth et al. 2022), so a cell describes a region about three cells wide rather than one
receptive field's centre. The stride-16 level keeps parts apart (a logo, a heel tab, a label)
where the stride-32 level the embedding pools is a quarter as fine; PatchCore takes its
features from the same middle of the network.

Exported beside the embedding model (`knockoff.patches.onnx`): the same weights, so a photo's
regions are described as the model that judged it sees them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from knockoff.model.embedder import Embedder
from knockoff.runtime.patches import PATCH_STRIDE


class PatchFeatures(nn.Module):
    """The embedder's normalisation and backbone up to its last stride-16 level (timm's
    `forward_intermediates`, stopping there: the rest of the backbone is not run)."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder
        levels = [i for i, info in enumerate(embedder.backbone.feature_info) if info["reduction"] == PATCH_STRIDE]
        if not levels:
            raise ValueError(f"{embedder.config.backbone} has no stride-{PATCH_STRIDE} level for patch features")
        self.level = levels[-1]
        self.channels = int(embedder.backbone.feature_info[self.level]["num_chs"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (features,) = self.embedder.backbone.forward_intermediates(
            self.embedder.normalize(images), indices=[self.level], intermediates_only=True, stop_early=True)
        features = F.avg_pool2d(features, 3, stride=1, padding=1, count_include_pad=False)
        return F.normalize(features, dim=1).permute(0, 2, 3, 1).contiguous()
