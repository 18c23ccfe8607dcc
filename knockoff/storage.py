"""Photo bytes from wherever a crawl keeps them: local files and http(s) URLs (knockoff.imaging),
and object storage — s3://, gs://, abfs://, hdfs:// ... — through pyarrow's filesystems, so a
manifest in a bucket can list photos in the bucket."""

from __future__ import annotations

import numpy as np

from knockoff.imaging import MAX_DOWNLOAD_BYTES, ImageLoadError, decode_rgb
from knockoff.imaging import read_bytes as read_local_or_url

_NOT_OBJECT_STORES = frozenset({"http", "https", "file"})


def is_object_store(path: str) -> bool:
    scheme, separator, _ = path.partition("://")
    return bool(separator) and scheme.isalnum() and scheme.lower() not in _NOT_OBJECT_STORES


def read_bytes(path: str) -> bytes:
    if not is_object_store(path):
        return read_local_or_url(path)
    from pyarrow import fs

    try:
        filesystem, object_path = fs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(object_path) as stream:
            data = stream.read(MAX_DOWNLOAD_BYTES + 1)
    except (OSError, ValueError) as error:  # missing object, no credentials, unknown scheme
        raise ImageLoadError(f"cannot read {path}: {error}") from error
    # The same limits as imaging.read_bytes. They are repeated, not shared: imaging.py is the
    # preprocessing the model was trained with (a dependency of the DVC train stage).
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageLoadError(f"{path} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    if not data:
        raise ImageLoadError(f"{path} is empty")
    return data


def load_rgb(path: str, size: int) -> np.ndarray:
    """Read and decode one photo from any supported location."""
    return decode_rgb(read_bytes(str(path)), size, name=str(path))
