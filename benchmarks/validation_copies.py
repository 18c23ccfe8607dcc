"""How many validation photos are copies of a reference, and the figures without them.

The sneakers export holds augmented copies of one photograph (rotated, mirrored, cropped)
under neighbouring numbers, some in `train`, some in `valid`: a validation photo whose copy
is a gallery reference finds itself, and flatters every figure measured on `valid`. This
finds, for each `valid` photo, its 5 nearest references by embedding and checks each with the
copy detector (knockoff/images/copies.py, through `indexing.copies_of_references`, as `knockoff index` does); then it reports ROC-AUC and the share of fakes
flagged on all `valid` photos, on those with a copy in `train`, and on the rest.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/validation_copies.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from knockoff.data import read_source
from knockoff.data.records import FAKE
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import copies_of_references
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery
from knockoff.runtime.embedding import OnnxEmbedder, embed_records


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
    copies = copies_of_references(gallery, vectors, records, args.neighbours)
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
