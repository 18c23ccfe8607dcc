"""Knockoff: screen marketplace listing photos for counterfeit products.

The packages follow a photo's way through Knockoff, each importing only those before it:
images (bytes and pixels) -> data (records, datasets, manifests) -> runtime (ONNX
embeddings) -> scoring (k-NN log-odds, calibration, open world) -> gallery (FAISS
references, matching) -> screening (`knockoff screen`) -> listings (listings, sellers,
evidence) -> evaluation (`knockoff evaluate`) -> model (torch: training, export) -> cli.
tests/test_layers.py holds the order.
"""

__version__ = "0.1.0"
