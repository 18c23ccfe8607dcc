"""How many validation photos are copies of a reference, and the figures without them.

The sneakers export holds augmented copies of one photograph (rotated, mirrored, cropped)
under neighbouring numbers, some in `train`, some in `valid`: a validation photo whose copy
is a gallery reference finds itself, and flatters every figure measured on `valid`. This
finds, for each `valid` photo, its 5 nearest `train` references by embedding and checks each
with the copy detector (knockoff/copies.py); then it reports ROC-AUC and the share of fakes
flagged on all `valid` photos, on those with a copy in `train`, and on the rest.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/validation_copies.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from knockoff.copies import features, grey_thumbnail, verify
from knockoff.data import data_root, read_source
from knockoff.embedding import OnnxEmbedder, embed_records
from knockoff.gallery import Gallery
from knockoff.matching import match
from knockoff.metrics import roc_auc
from knockoff.records import FAKE


def figures(is_fake: np.ndarray, raw: np.ndarray, flagged: np.ndarray, scored: np.ndarray) -> dict:
    return {"photos": int(len(is_fake)), "fakes": int(is_fake.sum()),
            "roc_auc_raw": roc_auc(is_fake, raw) if 0 < is_fake.sum() < len(is_fake) else None,
            "fakes_flagged": float(flagged[is_fake].mean()) if is_fake.any() else None,
            "genuine_flagged": float(flagged[~is_fake].mean()) if (~is_fake).any() else None,
            "scored": float(scored.mean()) if len(scored) else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--valid", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--neighbours", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-validation-copies.json"))
    args = parser.parse_args()

    embedder = OnnxEmbedder(args.model)
    gallery = Gallery.load(args.index, model=embedder.info)
    records = list(read_source(args.valid))
    vectors, records, _ = embed_records(embedder, records, 32, 2, "valid")
    sources = np.array(gallery.references.column("source").to_pylist(), dtype=object)
    train_rows = np.flatnonzero(np.array([str(s).startswith("sneakers/train") for s in sources]))
    train_vectors = gallery.index.reconstruct_n(0, gallery.index.ntotal)[train_rows]
    paths = gallery.references.column("path").to_pylist()
    nearest = np.argsort(-(vectors @ train_vectors.T), axis=1)[:, : args.neighbours]

    cache: dict[str, object] = {}

    def features_of(path: str):
        if path not in cache:
            cache[path] = features(grey_thumbnail(Path(path).read_bytes()))
        return cache[path]

    copies = []
    for i, record in enumerate(records):
        found = None
        for row in nearest[i]:
            reference = str(Path(data_root(), paths[train_rows[row]]))
            if verify(features_of(record.path), features_of(reference)).copy:
                found = reference
                break
        copies.append(found)
    has_copy = np.array([c is not None for c in copies])

    matches = match(gallery, vectors, with_evidence=False)
    is_fake = np.array([r.authenticity == FAKE for r in records])
    flagged = np.asarray(matches.flagged, dtype=bool)
    scored = np.array([s == "scored" for s in matches.status])
    report = {
        "valid_photos": len(records), "with_a_copy_in_train": int(has_copy.sum()),
        "all": figures(is_fake, matches.raw, flagged, scored),
        "with_a_copy": figures(is_fake[has_copy], matches.raw[has_copy], flagged[has_copy], scored[has_copy]),
        "without_a_copy": figures(is_fake[~has_copy], matches.raw[~has_copy], flagged[~has_copy], scored[~has_copy]),
        "model": embedder.info.version, "gallery": gallery.info.version,
        "examples": [[Path(r.path).name, Path(c).name] for r, c in zip(records, copies) if c][:5],
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
