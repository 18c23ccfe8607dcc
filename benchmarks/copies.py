"""Copy detection (knockoff/images/copies.py) on real photos with a copier's edits, and on
same-shoot photos that are not copies.

Positives: 100 sneakers `valid` and 60 grocery-packages `val` photos (seeded sample), each
edited seven ways — a 70-90% crop, halved, re-encoded at JPEG quality 35, mirrored, a
tiled semi-transparent watermark, a caption bar, and crop + mirror + resize + re-encode at
once. Negatives: pairs of different photos of one product from the same shoot (grocery
`train` and `val` folders hold one product each, shot in one session): the hard case.
Prints recall per edit and the false-copy rate on the negatives.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/copies.py
"""

from __future__ import annotations

import glob
import io
import json
import os
import random
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from knockoff.images.copies import features, grey_thumbnail, verify
from knockoff.runtime.cpu import cpu_description

ROOT = Path(os.environ.get("KNOCKOFF_DATA", "data/raw"))
rng = random.Random(0)


def encoded(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def crop(image: Image.Image) -> Image.Image:
    width, height = image.size
    keep = rng.uniform(0.7, 0.9)
    w, h = int(width * keep), int(height * keep)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    return image.crop((x, y, x + w, y + h))


def watermark(image: Image.Image) -> Image.Image:
    image = image.convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for top in range(0, image.size[1], 60):
        draw.text((10, top), "SHOP-XYZ.COM  " * 4, fill=(255, 255, 255, 110))
    return Image.alpha_composite(image, layer)


def caption(image: Image.Image) -> Image.Image:
    image = image.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    draw.rectangle((0, height - int(height * 0.12), width, height), fill=(255, 0, 0))
    draw.text((10, height - int(height * 0.1)), "SALE -50% FREE SHIPPING", fill=(255, 255, 255))
    return image


EDITS = {
    "crop": lambda im: encoded(crop(im)),
    "resize": lambda im: encoded(im.resize((im.size[0] // 2, im.size[1] // 2))),
    "reencode": lambda im: encoded(im, 35),
    "mirror": lambda im: encoded(ImageOps.mirror(im)),
    "watermark": lambda im: encoded(watermark(im)),
    "caption": lambda im: encoded(caption(im)),
    "all at once": lambda im: encoded(ImageOps.mirror(crop(im)).resize((300, 300)), 50),
}


def main() -> None:
    sneakers = sorted(glob.glob(str(ROOT / "sneakers/valid/images/*.jpg")))
    grocery = sorted(glob.glob(str(ROOT / "grocery-packages/val/Packages/*/*/*.jpg")))
    originals = rng.sample(sneakers, 100) + rng.sample(grocery, 60)
    pairs = []
    for folder in sorted(glob.glob(str(ROOT / "grocery-packages/*/Packages/*/*") + "/")):
        photos = sorted(glob.glob(folder + "*.jpg"))
        pairs += [tuple(rng.sample(photos, 2)) for _ in range(3) if len(photos) > 1]
    started, checks = time.perf_counter(), 0
    recall = {}
    for name, edit in EDITS.items():
        hits = 0
        for path in originals:
            image = ImageOps.exif_transpose(Image.open(path))
            hits += verify(features(grey_thumbnail(Path(path).read_bytes())), features(grey_thumbnail(edit(image)))).copy
            checks += 1
        recall[name] = hits / len(originals)
    false_copies = [(a, b) for a, b in pairs
                    if verify(features(grey_thumbnail(Path(a).read_bytes())), features(grey_thumbnail(Path(b).read_bytes()))).copy]
    checks += len(pairs)
    report = {"cpu": cpu_description(), "originals": len(originals), "recall": recall,
              "same_shoot_pairs": len(pairs), "false_copies": len(false_copies),
              "false_copy_rate": len(false_copies) / len(pairs),
              "ms_per_pair_with_features": round((time.perf_counter() - started) / checks * 1000, 1),
              "false_copy_examples": [[Path(a).name, Path(b).name] for a, b in false_copies[:5]]}
    print(json.dumps(report, indent=2))
    Path("reports").mkdir(exist_ok=True)
    Path("reports/benchmark-copies.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
