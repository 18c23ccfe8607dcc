"""`knockoff screen`: listing photos in, one result row per photo out, at crawl scale.

Decode threads, model streams and a post thread that matches, scores and writes (screen.py);
rows committed in resumable parts (parts.py) and merged into Parquet, CSV or JSONL
(results.py); the same pipeline on Ray Data (ray_engine.py); reused photos across a run
(duplicates.py); the run read back and summarised (report.py). Never imports torch.
"""
