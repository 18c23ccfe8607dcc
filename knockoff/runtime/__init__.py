"""The ONNX side of the model: records in, embeddings out, without torch.

Takes ImageRecords and an exported model; decodes them in threads with bounded prefetch
(batches.py), runs onnxruntime sessions set up for this machine (sessions.py, embedding.py),
and knows what the CPU does to int8 (cpu.py) and how to quantize a model to it (quantize.py).
"""
