"""Reader for a Roboflow YOLO export (`data.yaml` + `<split>/images` + `<split>/labels`).

Product and authenticity are parsed from the class names: 'nike fake air force' is the
product 'nike air force' with authenticity 'fake'; 'nike original jordan 1' is 'nike jordan 1',
genuine. Boxes are read to label the whole photo:
- authenticity is 'fake' if any box is a fake (a listing that shows a fake is a counterfeit
  listing; the dataset has a few side-by-side comparison photos);
- the product is the one with the most boxes (first listed wins a tie);
- a photo with no boxes is kept unlabelled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from knockoff.data.records import FAKE, GENUINE, ImageRecord, is_authenticity_word, parse_authenticity
from knockoff.images.decode import IMAGE_SUFFIXES


def is_roboflow_dataset(directory: Path) -> bool:
    return (directory / "data.yaml").is_file()


def is_roboflow_split(directory: Path) -> bool:
    return (directory / "images").is_dir() and is_roboflow_dataset(directory.parent)


def parse_class_name(name: str) -> tuple[str, str | None, str | None]:
    """'nike fake air force' -> ('nike air force', 'fake', 'nike')."""
    words = name.split()
    authenticity = None
    kept = []
    for word in words:
        if authenticity is None and is_authenticity_word(word):
            authenticity = parse_authenticity(word)
        else:
            kept.append(word)
    product = " ".join(kept) if kept else name
    brand = kept[0] if len(kept) > 1 else None
    return product, authenticity, brand


def read_class_names(dataset_dir: Path) -> list[str]:
    config = yaml.safe_load((dataset_dir / "data.yaml").read_text())
    names = config["names"]
    if isinstance(names, dict):  # newer exports: {0: 'name', 1: ...}
        names = [names[i] for i in sorted(names)]
    return [str(name) for name in names]


def listing_id_from_stem(stem: str) -> str:
    """Roboflow renames '0123.jpg' to '0123_jpg.rf.<hash>': keep the original name."""
    return stem.split(".rf.")[0].rsplit("_", 1)[0] if ".rf." in stem else stem


def read_roboflow(dataset_dir: Path, split: str) -> Iterator[ImageRecord]:
    dataset_dir = Path(dataset_dir)
    classes = [parse_class_name(name) for name in read_class_names(dataset_dir)]
    images_dir = dataset_dir / split / "images"
    labels_dir = dataset_dir / split / "labels"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir} does not exist (split {split!r} of {dataset_dir})")
    for image_path in sorted(images_dir.iterdir()):
        if image_path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        box_classes = _read_box_classes(labels_dir / f"{image_path.stem}.txt", len(classes))
        product, authenticity, brand = _label_photo([classes[c] for c in box_classes])
        yield ImageRecord(
            path=str(image_path),
            listing_id=listing_id_from_stem(image_path.stem),
            product=product,
            authenticity=authenticity,
            brand=brand,
            source=f"{dataset_dir.name}/{split}",
        )


def _read_box_classes(label_path: Path, class_count: int) -> list[int]:
    if not label_path.is_file():
        return []
    found = []
    for line_number, line in enumerate(label_path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        class_id = int(fields[0])
        if not 0 <= class_id < class_count:
            raise ValueError(f"{label_path}:{line_number}: class {class_id} not in data.yaml")
        found.append(class_id)
    return found


def _label_photo(
    boxes: list[tuple[str, str | None, str | None]],
) -> tuple[str | None, str | None, str | None]:
    if not boxes:
        return None, None, None
    product_counts = Counter(product for product, _, _ in boxes)
    product = max(product_counts, key=lambda name: (product_counts[name], -_first(boxes, name)))
    authenticities = {authenticity for _, authenticity, _ in boxes}
    authenticity = FAKE if FAKE in authenticities else (GENUINE if GENUINE in authenticities else None)
    brand = next(brand for name, _, brand in boxes if name == product)
    return product, authenticity, brand


def _first(boxes: list[tuple[str, str | None, str | None]], product: str) -> int:
    return next(i for i, (name, _, _) in enumerate(boxes) if name == product)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the image


def product_boxes(image_path: str | Path) -> list[Box] | None:
    """The labelled product boxes of a Roboflow export's image (its `labels/NAME.txt` beside
    `images/`), or None where the image has no label file. Roboflow exports its images at the
    size the boxes are fractions of, upright."""
    image_path = Path(image_path)
    if image_path.parent.name != "images":
        return None
    label_path = image_path.parent.parent / "labels" / f"{image_path.stem}.txt"
    if not label_path.is_file():
        return None
    boxes = []
    for line in label_path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 5:
            x, y, w, h = (float(value) for value in fields[1:])
            boxes.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return boxes


def cells_inside(boxes: list[Box], grid: int) -> np.ndarray:
    """(grid * grid,) bool: which cells of a grid over the image have their centre in a box."""
    centres = (np.arange(grid) + 0.5) / grid
    x, y = np.meshgrid(centres, centres)
    inside = np.zeros((grid, grid), bool)
    for x0, y0, x1, y1 in boxes:
        inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return inside.ravel()
