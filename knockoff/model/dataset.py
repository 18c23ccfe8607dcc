"""A torch Dataset over ImageRecords: decoded with the screening decoder, then augmented."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from knockoff.data.records import ImageRecord
from knockoff.images.decode import load_rgb
from knockoff.model.augment import augment_image


class AugmentedImages(Dataset):
    def __init__(self, records: list[ImageRecord], labels: list[int], load_size: int, augment: A.Compose) -> None:
        self.records = records
        self.labels = labels
        self.load_size = load_size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """(augmented uint8 image, class, sample id)."""
        image = load_rgb(self.records[index].path, self.load_size)
        return torch.from_numpy(np.ascontiguousarray(augment_image(self.augment, image))), self.labels[index], index


def seed_worker(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream, derived from torch's seed.

    torch seeds each worker (base seed + worker id, the base drawn from the seeded main
    generator each epoch), so runs are reproducible and epochs and workers all differ.
    """
    info = torch.utils.data.get_worker_info()
    info.dataset.augment.set_random_seed(torch.initial_seed() % 2**32)
