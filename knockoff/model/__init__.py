"""The torch side: backbone with offline ImageNet weights, embedder, losses, augmentation,
training loop, checkpoints and ONNX export.

Takes prepared manifests and params; gives a checkpoint (training.py, `python train.py`) and
the ONNX model screening runs (export.py). Needs the [train] extra; nothing on the screening
path imports it.
"""
