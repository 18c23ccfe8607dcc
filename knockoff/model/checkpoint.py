"""Self-describing checkpoints: the weights plus everything needed to rebuild model and inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from knockoff.model.backbone import create_backbone
from knockoff.model.embedder import Embedder, EmbedderConfig


def model_version(model: Embedder) -> str:
    """A short content hash of the architecture config and every weight: the model's identity.

    Galleries and screening results carry it, so embeddings from two models are never mixed.
    """
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: Path, model: Embedder, **extra: Any) -> str:
    """Write the checkpoint; returns the model version. `extra` (classes, metrics, params) is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = model_version(model)
    payload = {
        "format": 1,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "version": version,
        **extra,
    }
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)  # a crash mid-write never leaves a half checkpoint behind
    return version


def load_checkpoint(path: Path) -> tuple[Embedder, dict[str, Any]]:
    """The model (eval mode, weights loaded) and the checkpoint's other fields."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    config = EmbedderConfig.from_dict(payload["config"])
    # The weights come from the checkpoint; the backbone only needs its architecture.
    model = Embedder(config, create_backbone(config.backbone, pretrained="none"))
    model = model.to(memory_format=torch.channels_last)
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    extra = {k: v for k, v in payload.items() if k not in ("state_dict", "config")}
    return model, extra
