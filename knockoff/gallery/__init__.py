"""The reference gallery: embeddings of genuine references, known fakes and unmonitored
photos in a FAISS index, with the calibrations fitted on held-back photos.

`knockoff index` builds one for a model (indexing.py) and saves it with its reference table
(store.py); `match` finds, per photo, its product, its references on each side and the
verdict they support (matching.py), with the references as evidence (evidence.py).
"""
