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
