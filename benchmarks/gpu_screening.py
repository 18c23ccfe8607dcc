"""Screening on a GPU: `knockoff screen --device cuda` for real, and how much CPU feeds it.

On a machine with an NVIDIA GPU and onnxruntime-gpu (`pip install 'knockoff[gpu]'`):
1. model only: the exported ONNX model under onnxruntime's CUDA provider on pre-decoded uint8
   batches (host-to-device copy included, as in screening), at several batch sizes;
2. decode: CPU seconds per photo of Knockoff's decode + resize on one core;
3. end to end: the `knockoff screen --device cuda` command itself (a subprocess: model and
   gallery loading, decode, embed, search, score, Parquet), at several decode thread counts;
4. the decode cores one GPU needs: model-only images/s x decode CPU seconds per photo;
5. the post thread's cost: CPU seconds per photo of its search, verdicts and rows
   (`Scorer.rows`, timed inside an in-process run), and what that one thread allows.

Photos are real 640 px sneaker JPEGs (data/sample, or --photos), copied under distinct names
up to --count so that nothing is cached per path.

    python benchmarks/gpu_screening.py --count 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from knockoff.data.records import ImageRecord
from knockoff.runtime.batches import decode_batches
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder


def crawl_folder(sources: list[Path], count: int, into: Path) -> list[str]:
    """`count` photos under distinct names, cycling through the JPEGs found in `sources`."""
    found = sorted(p for s in sources for p in (s.rglob("*.jpg") if s.is_dir() else [s]))
    if not found:
        raise SystemExit(f"no JPEGs in {', '.join(map(str, sources))}")
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        target = into / f"{i:07d}.jpg"
        shutil.copyfile(found[i % len(found)], target)
        paths.append(str(target))
    return paths


def gpu_name() -> str:
    try:
        answer = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
        return answer.stdout.strip() or "unknown GPU"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown GPU (no nvidia-smi)"


def model_only(model: Path, images: np.ndarray, batch_size: int, repeats: int = 3) -> float:
    """Median images/s of three passes over the pre-decoded photos (after one warm-up batch)."""
    embedder = OnnxEmbedder(model, device="cuda")
    embedder.embed(images[:batch_size])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(images), batch_size):
            embedder.embed(images[start:start + batch_size])
        rates.append(len(images) / (time.perf_counter() - started))
    return float(np.median(rates))


def decode_seconds(paths: list[str], size: int) -> float:
    """CPU seconds per photo of decode + resize on one thread."""
    records = [ImageRecord(path=p) for p in paths]
    started = time.process_time()
    for _ in decode_batches(records, size, 64, workers=1, prefetch=0):
        pass
    return (time.process_time() - started) / len(records)


def screen_command(folder: Path, model: Path, index: Path, workers: int, batch_size: int, out: Path) -> tuple[float, str]:
    """Images/s of the real command, from its start to its exit, and its summary line."""
    command = [sys.executable, "-m", "knockoff", "screen", str(folder), "--model", str(model), "--index", str(index),
               "--device", "cuda", "--workers", str(workers), "--batch-size", str(batch_size), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"knockoff screen failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = next((line for line in done.stdout.splitlines() if line.startswith("screened")), done.stdout.strip())
    return seconds, summary


def post_thread_seconds(folder: Path, model: Path, index: Path, workers: int, batch_size: int, out: Path,
                        device: str = "cuda") -> float:
    """CPU seconds per photo that the post thread spends in `Scorer.rows` (search, verdicts,
    evidence, rows), measured with the thread's own clock during a real in-process run."""
    from knockoff.screening.screen import Scorer, ScreenOptions, screen

    spent, photos = [0.0], [0]
    real_rows = Scorer.rows

    def timed_rows(self, batch, embeddings):
        started = time.thread_time()
        rows = real_rows(self, batch, embeddings)
        spent[0] += time.thread_time() - started
        photos[0] += len(batch.records)
        return rows

    Scorer.rows = timed_rows
    try:
        screen([str(folder)], out, model, index, ScreenOptions(batch_size=batch_size, decode_workers=workers, device=device))
    finally:
        Scorer.rows = real_rows
    return spent[0] / max(photos[0], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, nargs="+", default=[Path("data/sample/sneakers")])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--model-batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batch-size", type=int, default=128, help="knockoff screen's batch size")
    parser.add_argument("--decode-workers", type=int, nargs="+", default=[2, 4, 8, 14])
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-gpu.json"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp())
    paths = crawl_folder(args.photos, args.count, scratch / "crawl")
    size = OnnxEmbedder(args.model).info.input_size
    cpu, gpu = cpu_description(), gpu_name()
    print(f"{len(paths)} photos; {os.cpu_count()} CPU cores: {cpu}; GPU: {gpu}", flush=True)

    decode_s = decode_seconds(paths[:2000], size)
    print(f"decode + resize: {decode_s * 1000:.2f} ms of CPU per photo (one thread)", flush=True)
    images = np.concatenate([b.images for b in decode_batches([ImageRecord(path=p) for p in paths[:4096]], size, 256)])
    by_batch = {b: model_only(args.model, images, b) for b in args.model_batch_sizes}
    best = max(by_batch, key=by_batch.get)
    print("model only (CUDA): " + ", ".join(f"batch {b}: {rate:.0f}" for b, rate in by_batch.items()) + " images/s", flush=True)
    cores_needed = by_batch[best] * decode_s
    print(f"decode cores one GPU needs at {by_batch[best]:.0f} images/s: {cores_needed:.1f}", flush=True)

    end_to_end = {}
    for workers in args.decode_workers:
        seconds, summary = screen_command(scratch / "crawl", args.model, args.index, workers, args.batch_size,
                                          scratch / f"results-{workers}.parquet")
        end_to_end[workers] = len(paths) / seconds
        print(f"knockoff screen --device cuda --workers {workers}: {end_to_end[workers]:.0f} images/s "
              f"({seconds:.1f} s, start-up included) | {summary}", flush=True)
    best_workers = max(end_to_end, key=end_to_end.get)
    post_s = post_thread_seconds(scratch / "crawl", args.model, args.index, best_workers, args.batch_size,
                                 scratch / "results-post.parquet")
    print(f"post thread (Scorer.rows: search, verdicts, rows): {post_s * 1000:.2f} ms of CPU per photo, "
          f"so at most {1 / post_s:.0f} images/s from that one thread", flush=True)
    report = {
        "photos": len(paths), "cpu": cpu, "cpu_cores": os.cpu_count(), "gpu": gpu,
        "decode_ms_per_photo": round(decode_s * 1000, 3),
        "model_only_images_per_s": {str(b): round(r, 1) for b, r in by_batch.items()},
        "decode_cores_per_gpu": round(cores_needed, 2),
        "screen_batch_size": args.batch_size,
        "end_to_end_images_per_s": {str(w): round(r, 1) for w, r in end_to_end.items()},
        "end_to_end_over_model_only": round(end_to_end[best_workers] / by_batch[best], 3),
        "post_thread_ms_per_photo": round(post_s * 1000, 3),
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
