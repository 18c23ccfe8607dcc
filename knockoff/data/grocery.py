"""Reader for the GroceryStoreDataset layout (Klasson et al., WACV 2019).

`train.txt`/`val.txt`/`test.txt` list `relative/path.jpg, fine_class_id, coarse_class_id`;
`classes.csv` names each class and points at its studio "iconic" image, which serves as the
genuine reference for that product. Split 'iconic' yields those reference images.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from knockoff.data.records import GENUINE, ImageRecord

ICONIC_SPLIT = "iconic"


@dataclass(frozen=True)
class GroceryClass:
    name: str
    class_id: int
    coarse_name: str
    iconic_path: str


def is_grocery_dataset(directory: Path) -> bool:
    return (directory / "classes.csv").is_file()


def read_classes(dataset_dir: Path) -> dict[int, GroceryClass]:
    with open(dataset_dir / "classes.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    classes = {}
    for row in rows[1:]:
        if not row:
            continue
        name, class_id, coarse_name, _, iconic_path = (field.strip() for field in row[:5])
        classes[int(class_id)] = GroceryClass(name, int(class_id), coarse_name, iconic_path)
    return classes


def read_grocery(dataset_dir: Path, split: str) -> Iterator[ImageRecord]:
    """A split's photos with product names. Without `classes.csv` (the produce part, products
    nobody monitors) the product is the photo's folder and the photo carries no label."""
    dataset_dir = Path(dataset_dir)
    if not is_grocery_dataset(dataset_dir):
        yield from _read_unlabelled_split(dataset_dir, split)
        return
    classes = read_classes(dataset_dir)
    source = f"{dataset_dir.name}/{split}"
    if split == ICONIC_SPLIT:
        for grocery_class in sorted(classes.values(), key=lambda c: c.class_id):
            path = dataset_dir / grocery_class.iconic_path.lstrip("/")
            yield ImageRecord(str(path), grocery_class.name, grocery_class.name, GENUINE, None, source)
        return
    list_file = dataset_dir / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file} does not exist (split {split!r} of {dataset_dir})")
    for line_number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        relative_path, class_id, _ = (field.strip() for field in line.split(","))
        if int(class_id) not in classes:
            raise ValueError(f"{list_file}:{line_number}: class {class_id} not in classes.csv")
        name = classes[int(class_id)].name
        yield ImageRecord(
            path=str(dataset_dir / relative_path),
            listing_id=Path(relative_path).stem,
            product=name,
            authenticity=GENUINE,
            source=source,
        )


def _read_unlabelled_split(dataset_dir: Path, split: str) -> Iterator[ImageRecord]:
    list_file = dataset_dir / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file} does not exist (split {split!r} of {dataset_dir})")
    for line in list_file.read_text().splitlines():
        if line.strip():
            relative_path = line.split(",")[0].strip()
            yield ImageRecord(path=str(dataset_dir / relative_path), listing_id=Path(relative_path).stem,
                              product=Path(relative_path).parent.name, source=f"{dataset_dir.name}/{split}")
