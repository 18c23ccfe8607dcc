"""Augmentations that make a clean photo look like another marketplace listing of it.

Listing photos are re-framed (crops, rotations including sideways uploads, perspective from a
hand-held phone), re-lit (white balance, exposure), blurred, re-compressed by every platform
they pass through, and down-scaled. Colour shifts stay small: a slightly-off colourway is
itself counterfeit evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    crop_scale: tuple[float, float] = (0.45, 1.0)  # area of the photo a crop keeps
    rotate90: float = 0.2  # probability of a sideways/upside-down upload
    rotate_limit: float = 20.0  # degrees of hand-held tilt
    perspective: float = 0.3
    flip: float = 0.5
    lighting: float = 0.8
    blur: float = 0.25
    jpeg: float = 0.5
    downscale: float = 0.25
    noise: float = 0.15
    grayscale: float = 0.03


def load_size(input_size: int) -> int:
    """Decode training photos a little larger than the model input, so crops keep detail."""
    return int(round(input_size * 1.25))


def build_augment(input_size: int, params: AugmentParams) -> A.Compose:
    size = (input_size, input_size)
    return A.Compose([
        A.RandomResizedCrop(size=size, scale=params.crop_scale, ratio=(0.75, 1.333), interpolation=cv2.INTER_CUBIC),
        A.RandomRotate90(p=params.rotate90),
        A.HorizontalFlip(p=params.flip),
        A.Rotate(limit=params.rotate_limit, border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.4),
        A.Perspective(scale=(0.02, 0.08), border_mode=cv2.BORDER_CONSTANT, fill=0, p=params.perspective),
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03),
            A.RandomGamma(gamma_limit=(70, 140)),
        ], p=params.lighting),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 7)),
            A.MotionBlur(blur_limit=(3, 9)),
        ], p=params.blur),
        A.OneOf([
            A.GaussNoise(std_range=(0.02, 0.08)),
            A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.1, 0.4)),
        ], p=params.noise),
        A.Downscale(scale_range=(0.35, 0.8), p=params.downscale),
        A.ImageCompression(quality_range=(30, 90), p=params.jpeg),
        A.ToGray(p=params.grayscale),
    ])


def augment_image(pipeline: A.Compose, image: np.ndarray) -> np.ndarray:
    return pipeline(image=image)["image"]
