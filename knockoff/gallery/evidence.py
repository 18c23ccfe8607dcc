"""The references shown as evidence beside a photo, as an Arrow struct.

A match gives, per photo, lists of these: its k nearest references of the judged product, and
its nearest genuine references and known fakes. The results' `neighbors`, `nearest_genuine`
and `nearest_fake` columns hold them as they are.
"""

from __future__ import annotations

import pyarrow as pa

# one gallery row and its cosine similarity to the photo
REFERENCE = pa.struct([
    ("row", pa.int64()),
    ("similarity", pa.float32()),
    ("path", pa.string()),
    ("listing_id", pa.string()),
    ("product", pa.string()),
    ("authenticity", pa.string()),
    ("source", pa.string()),
])

EVIDENCE_FIELDS = tuple(field.name for field in REFERENCE)

# local evidence (gallery/regions.py): a region of the photo, fractions of the upright photo,
# and the reference region it matched best; `side` says whether that is a genuine reference
# or a known fake (a region nearer a fake's than any genuine reference's)
REGION = pa.struct([
    ("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("distance", pa.float32()),
    ("reference_path", pa.string()),
    ("ref_x0", pa.float32()), ("ref_y0", pa.float32()), ("ref_x1", pa.float32()), ("ref_y1", pa.float32()),
    ("side", pa.string()),
])
