"""Screening throughput on this machine, measured in one run, with the ratios that matter.

On real 640 px sneaker JPEGs (sneakers train + valid from KNOCKOFF_DATA, >= 2,000 photos):
1. model only: the exported ONNX model on pre-decoded batches (images/s), at the fastest of
   several batch sizes;
2. end to end: `knockoff screen` (decode -> embed -> search -> score -> write Parquet),
   from the call to the closed file, model and gallery loading included;
3. naive baseline: the timm model in PyTorch eager mode, PIL full decode and resize, one
   image at a time, brute-force numpy search of the same gallery;
4. int8 beside fp32, model only and end to end.
And what bounds end to end on a CPU that the model already fills: the CPU time of each
decode step, and the throughput each would allow if everything else were free.
Every figure but the naive baseline is the median of --repeats runs (3), each run's value
printed beside it; model only and end to end run in back-to-back pairs, and the headline
ratio is the median of the pairs' ratios (this VM's speed drifts between minutes); the CPU (model, AVX2 / AVX-512 / VNNI) heads the output. Written to a
log (stderr not a terminal), it carries no progress bars.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/screening.py
    (needs the [train] extra for the baseline, and models/checkpoint.pt from `dvc repro`)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if not sys.stderr.isatty():  # a log file: no progress bars (tqdm reads this when first imported)
    os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

from knockoff.data import read_sources  # noqa: E402
from knockoff.gallery.store import Gallery  # noqa: E402
from knockoff.runtime.batches import decode_batches  # noqa: E402
from knockoff.runtime.cpu import cpu_description  # noqa: E402
from knockoff.runtime.embedding import OnnxEmbedder  # noqa: E402
from knockoff.screening.screen import ScreenOptions, screen  # noqa: E402


def median_of(repeats: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """The median of `repeats` runs of `measure`, and every run's value."""
    values = [measure() for _ in range(repeats)]
    return statistics.median(values), values


def _runs(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    return "runs " + ", ".join(f"{v * scale:.{digits}f}" for v in values)


def photos(specs: list[str], count: int) -> list[str]:
    paths = [os.path.abspath(record.path) for record in read_sources(specs)]  # the manifest lives elsewhere
    if len(paths) < count:
        raise SystemExit(f"only {len(paths)} photos in {specs}; need {count}")
    return paths[:count]


def model_only(model: Path, images: np.ndarray, batch_size: int, threads: int | None, streams: int = 1) -> float:
    """Images/s of session.run alone on pre-decoded uint8 batches (one warm-up batch first):
    one call at a time on `threads` threads, or `streams` calls at once on one thread each."""
    from concurrent.futures import ThreadPoolExecutor

    embedder = OnnxEmbedder(model, threads=threads if streams == 1 else 1, spin=True)  # nothing else runs: let it spin
    embedder.embed(images[:batch_size])
    batches = [images[start:start + batch_size] for start in range(0, len(images), batch_size)]
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(embedder.embed, batches))
    return len(images) / (time.perf_counter() - started)


def decode_only(paths: list[str], size: int) -> float:
    """CPU seconds per photo to turn a JPEG file into the model's input (one decode thread):
    the process's CPU time, reading, decoding, resizing and batching together. CPU time, not
    wall time: what decoding takes from the cores the model needs, and what a VM's stolen
    minutes do not inflate."""
    records = [_record(p) for p in paths]
    started = time.process_time()
    for _ in decode_batches(records, size, 64, workers=1, prefetch=0):
        pass
    return (time.process_time() - started) / len(records)


def decode_steps(paths: list[str], size: int) -> dict[str, float]:
    """CPU seconds per photo of each step inside decode + resize (one thread, bytes in memory).

    dct-scaled decode: libjpeg-turbo at the smallest of its SIMD scales (1/8, 1/4, 1/2, 1)
    that still covers `size`, as knockoff.images.decode does (1/2 for 640 px); resize: knockoff.images.decode.squash from there to
    `size`; entropy-decode floor: the same JPEG at 1/8 scale, the least work libjpeg can do
    for a file (every coefficient is still Huffman-decoded), so no JPEG decoder gets below it;
    pillow draft + bicubic: the path before issue 13 (1/2 scale, then Pillow's bicubic).
    """
    import io

    from PIL import Image

    from knockoff.images.decode import _decode_jpeg_scaled, squash

    encoded = [Path(path).read_bytes() for path in paths]

    def per_photo(step) -> float:  # nothing kept: a pipeline's memory is reused, not faulted in afresh
        started = time.thread_time()
        for data in encoded:
            step(data)
        return (time.thread_time() - started) / len(encoded)

    def entropy_only(data: bytes) -> Image.Image:  # 1/8 scale: DC coefficients only, no IDCT to speak of
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (1, 1))
        image.load()
        return image

    def pillow_path(data: bytes) -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (size, size))
        return image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)

    decode_s = resize_s = 0.0
    for data in encoded:  # each photo decoded, then resized, before the next
        started = time.thread_time()
        pixels = _decode_jpeg_scaled(data, size, "photo", 10**9)
        decoded = time.thread_time()
        squash(pixels, size)
        decode_s, resize_s = decode_s + decoded - started, resize_s + time.thread_time() - decoded
    return {"dct_scaled_decode": decode_s / len(encoded), "resize": resize_s / len(encoded),
            "entropy_decode_floor": per_photo(entropy_only), "pillow_draft_bicubic": per_photo(pillow_path)}


def decode_scales(paths: list[str]) -> dict[str, float]:
    """CPU seconds per photo of libjpeg-turbo decoding at each M/8 scale (one thread, bytes in
    memory): why knockoff.images.decode decodes at 1/2 rather than the smaller 3/8."""
    import simplejpeg

    from knockoff.images.decode import scaled_side

    encoded = [Path(path).read_bytes() for path in paths]
    found = {}
    for eighths in range(1, 9):
        started = time.thread_time()
        for data in encoded:
            height, width = simplejpeg.decode_jpeg_header(data)[:2]
            simplejpeg.decode_jpeg(data, min_height=scaled_side(height, eighths), min_width=scaled_side(width, eighths))
        found[f"{eighths}/8"] = (time.thread_time() - started) / len(encoded)
    return found


def end_to_end(model: Path, gallery: Path, manifest: Path, count: int, options: ScreenOptions) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        summary = screen([str(manifest)], Path(scratch) / "results.parquet", model, gallery, options)
        seconds = time.perf_counter() - started
    assert summary.screened == count and summary.failed == 0, summary.line()
    return count / seconds


def post_share(model: Path, gallery: Path, manifest: Path, options: ScreenOptions) -> dict[str, float]:
    """One end-to-end run with the post thread's CPU time counted (FAISS search, scoring,
    rows): its ms per photo and its share of the run's CPU time."""
    from knockoff.screening.screen import Scorer, run_pipeline, write_run

    scorer = Scorer(model, gallery, options.session_threads, options.device, options.copy_check)
    post_cpu = [0.0]
    rows = scorer.rows

    def counted(batch, embeddings):
        started = time.thread_time()
        table = rows(batch, embeddings)
        post_cpu[0] += time.thread_time() - started
        return table

    scorer.rows = counted
    with tempfile.TemporaryDirectory() as scratch:
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        summary = write_run([str(manifest)], Path(scratch) / "results.parquet", scorer, options,
                            lambda records, write: run_pipeline(records, scorer, options, write))
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    return {"post_ms_per_photo": round(post_cpu[0] / summary.screened * 1000, 3),
            "post_share_of_cpu": round(post_cpu[0] / cpu, 3), "images_per_s": round(summary.screened / wall, 1)}


def tune(model: Path, gallery: Path, manifest: Path, count: int, repeats: int,
         grid: list[tuple[int, int, int | None, int, int | None]]) -> list[dict[str, float]]:
    """End to end for each (decode threads, model streams, onnxruntime threads, batch, photos
    per model run): images/s and the process's CPU ms per photo, medians of `repeats` rounds.
    Each round runs every configuration once, so all of them meet this VM's drifting speed alike."""
    configs = [ScreenOptions(batch_size=batch, decode_workers=workers, threads=threads, model_streams=streams,
                             model_batch=model_batch, duplicates=None)
               for workers, streams, threads, batch, model_batch in grid]
    rates: list[list[float]] = [[] for _ in configs]
    cpu_ms: list[list[float]] = [[] for _ in configs]
    for _ in range(repeats):
        for options, rate_runs, cpu_runs in zip(configs, rates, cpu_ms):
            cpu_before = time.process_time()
            rate_runs.append(end_to_end(model, gallery, manifest, count, options))
            cpu_runs.append((time.process_time() - cpu_before) / count * 1000)
    found = []
    for options, rate_runs, cpu_runs in zip(configs, rates, cpu_ms):
        rate, cpu = statistics.median(rate_runs), statistics.median(cpu_runs)
        found.append({"decode_threads": options.workers, "model_streams": options.streams,
                      "onnxruntime_threads": options.session_threads, "batch_size": options.batch_size,
                      "model_batch": options.run_batch, "images_per_s": round(rate, 1), "runs": [round(r, 1) for r in rate_runs],
                      "cpu_ms_per_photo": round(cpu, 3)})
        print(f"  tune: decode {options.workers}, streams {options.streams} x onnxruntime {options.session_threads}, "
              f"batch {options.batch_size} in model runs of {options.run_batch}: {rate:.1f} images/s ({_runs(rate_runs)}), "
              f"{cpu:.2f} ms of CPU per photo", flush=True)
    return found


def naive(checkpoint: Path, gallery_path: Path, paths: list[str], size: int) -> float:
    """timm in PyTorch eager mode, PIL decode at full size, one photo at a time, numpy search."""
    import torch
    from PIL import Image

    from knockoff.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    gallery = Gallery.load(gallery_path)
    references = gallery.index.reconstruct_n(0, gallery.index.ntotal)  # (n, D) for brute force
    is_fake = gallery.is_fake
    k = gallery.info.scorer.k

    def score(path: str) -> float:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        with torch.inference_mode():
            embedding = model(torch.from_numpy(pixels)[None]).numpy()[0]
        similarities = references @ embedding
        nearest = np.argpartition(-similarities, k)[:k]
        weights = np.exp((similarities[nearest] - similarities[nearest].max()) / gallery.info.scorer.temperature)
        return float((weights * is_fake[nearest]).sum() / weights.sum())

    score(paths[0])  # warm-up
    started = time.perf_counter()
    for path in paths:
        score(path)
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=["sneakers/train", "sneakers/valid"])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--int8", type=Path, default=Path("models/knockoff.int8.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/checkpoint.pt"))
    parser.add_argument("--naive-count", type=int, default=300, help="photos for the (slow) naive baseline")
    parser.add_argument("--batch-size", type=int, default=ScreenOptions.batch_size, help="knockoff screen's batch size")
    parser.add_argument("--model-batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                        help="model only is measured at each; the fastest counts")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median counts")
    parser.add_argument("--tune", action="store_true", help="also sweep decode threads, model streams, onnxruntime threads, batch size and photos per model run")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-screening.json"))
    args = parser.parse_args()

    paths = photos(args.photos, args.count)
    size = OnnxEmbedder(args.model).info.input_size
    manifest = Path(tempfile.mkdtemp()) / "crawl.csv"
    manifest.write_text("path\n" + "\n".join(paths) + "\n")
    cpu = cpu_description()  # every figure here, int8 above all, is this CPU's
    print(f"{len(paths)} photos from {args.photos}, {os.cpu_count()} cores; batch {args.batch_size} in model runs of "
          f"{ScreenOptions().run_batch}\nCPU: {cpu}")
    images = np.concatenate([b.images for b in decode_batches([_record(p) for p in paths], size, 64)])
    print(f"  decoded once for the model-only runs: {images.shape}")

    # Screening proper (decode -> embed -> search -> score -> write); the optional reused-photo
    # search (--duplicates) is measured by benchmarks/duplicates.py.
    options = ScreenOptions(batch_size=args.batch_size, threads=args.threads, duplicates=None)
    figures: dict[str, float] = {}
    paired: dict[str, float] = {}  # precision -> median of back-to-back end-to-end / model-only ratios
    decode_s, decode_runs = median_of(args.repeats, lambda: decode_only(paths[:1000], size))
    print(f"  decode + resize: {decode_s * 1000:.2f} ms of CPU per photo (one thread; {_runs(decode_runs, 1000, 2)})", flush=True)
    step_runs = [decode_steps(paths[:1000], size) for _ in range(args.repeats)]
    steps_s = {name: statistics.median(run[name] for run in step_runs) for name in step_runs[0]}
    print("    of which " + ", ".join(f"{name.replace('_', '-')} {seconds * 1000:.2f} ms"
                                     for name, seconds in steps_s.items()), flush=True)
    scale_runs = [decode_scales(paths[:500]) for _ in range(args.repeats)]
    scales_s = {name: statistics.median(run[name] for run in scale_runs) for name in scale_runs[0]}
    print("    libjpeg-turbo decode alone by scale: " + ", ".join(f"{name} {seconds * 1000:.2f} ms"
                                                             for name, seconds in scales_s.items()), flush=True)
    for precision, model in (("fp32", args.model), ("int8", args.int8)):
        if not model.is_file():
            print(f"  {model} missing: no {precision} figures")
            continue
        # At its best batch size, so no ratio is flattered by a handicapped model-only figure.
        # One call on every core, or one single-threaded call per core, as screening runs it.
        by_batch = {(size, streams): model_only(model, images, size, args.threads, streams)
                    for size in args.model_batch_sizes for streams in (1, os.cpu_count() or 1)}
        best = max(by_batch, key=by_batch.get)
        # Then model only and end to end in pairs, back to back: this VM's speed drifts 10-20%
        # between minutes, so each pair's ratio is read under one speed, and the median of
        # the pairs' ratios is the ratio reported.
        batch, streams = best
        pairs = [(model_only(model, images, batch, args.threads, streams),
                  end_to_end(model, args.index, manifest, len(paths), options)) for _ in range(args.repeats)]
        model_runs, end_runs = [m for m, _ in pairs], [e for _, e in pairs]
        figures[f"{precision}_model_only"] = statistics.median(model_runs)
        figures[f"{precision}_end_to_end"] = statistics.median(end_runs)
        paired[precision] = statistics.median(e / m for m, e in pairs)
        print(f"  {precision} model only: {figures[f'{precision}_model_only']:.1f} images/s on {cpu} (batch {best[0]}, "
              f"{best[1]} stream(s), {_runs(model_runs)}; first pass by batch and streams: "
              + ", ".join(f"{size}x{streams}: {rate:.1f}" for (size, streams), rate in by_batch.items()) + ")", flush=True)
        print(f"  {precision} end to end: {figures[f'{precision}_end_to_end']:.1f} images/s on {cpu} ({_runs(end_runs)}); "
              f"paired ratios {_runs([e / m for m, e in pairs], digits=3)}, median {paired[precision]:.3f}", flush=True)
    shares = post_share(args.model, args.index, manifest, options)
    print(f"  post thread (search, scoring, rows): {shares['post_ms_per_photo']:.2f} ms of CPU per photo, "
          f"{shares['post_share_of_cpu']:.1%} of the run's CPU", flush=True)
    cores = os.cpu_count() or 1
    grid = [(cores, cores, 1, 64, 2), (cores, cores, 1, 64, 4), (cores, cores, 1, 64, 8), (cores, cores, 1, 64, 16),
            (cores, cores, 1, 16, 16), (cores, cores, 1, 32, 2), (cores, cores, 1, 128, 2), (cores, 1, cores, 64, 2),
            (1, cores, 1, 64, 2), (cores, cores + 1, 1, 64, 2)]
    tuning = tune(args.model, args.index, manifest, len(paths), args.repeats, grid) if args.tune else []
    if args.checkpoint.is_file():
        figures["naive"] = naive(args.checkpoint, args.index, paths[:args.naive_count], size)
        print(f"  naive baseline ({args.naive_count} photos): {figures['naive']:.1f} images/s", flush=True)
    else:
        print(f"  {args.checkpoint} missing (`dvc pull` or `dvc repro`): no naive baseline")

    if "fp32_model_only" in figures:
        # Decoding cannot overlap with a model that already fills every core: the two add up.
        cores = args.threads or os.cpu_count() or 1
        for name, cpu_s in (("fp32_end_to_end_ceiling", decode_s),
                            ("fp32_bound_free_resize", steps_s["dct_scaled_decode"]),
                            ("fp32_bound_entropy_decode_only", steps_s["entropy_decode_floor"])):
            figures[name] = 1 / (1 / figures["fp32_model_only"] + cpu_s / cores)
        print(f"  fp32 end-to-end ceiling with this decode cost: {figures['fp32_end_to_end_ceiling']:.1f} images/s")
        print(f"    ... if resizing were free: {figures['fp32_bound_free_resize']:.1f}; if a photo cost only its "
              f"entropy decoding: {figures['fp32_bound_entropy_decode_only']:.1f}")
    ratios = {**{f"{precision} end-to-end / model-only, paired (the headline)": round(value, 3)
                 for precision, value in paired.items()}, **_ratios(figures)}
    print(f"\nratios (CPU: {cpu})")
    for name, value in ratios.items():
        print(f"  {name:<46} {value:6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"photos": len(paths), "cores": os.cpu_count(), "cpu": cpu, "batch_size": args.batch_size,
                                    "model_batch": options.run_batch,
                                    "repeats": args.repeats,
                                    "decode_ms_per_photo": round(decode_s * 1000, 3),
                                    "decode_steps_ms": {name: round(v * 1000, 3) for name, v in steps_s.items()},
                                    "decode_by_scale_ms": {name: round(v * 1000, 3) for name, v in scales_s.items()},
                                    "images_per_s": figures, "ratios": ratios, "post_thread": shares,
                                    "tuning": tuning}, indent=2) + "\n")
    print(f"-> {args.out}")


def _ratios(figures: dict[str, float]) -> dict[str, float]:
    wanted = {
        "fp32 end-to-end / model-only, medians": ("fp32_end_to_end", "fp32_model_only"),
        "fp32 end-to-end / naive": ("fp32_end_to_end", "naive"),
        "fp32 ceiling / model-only": ("fp32_end_to_end_ceiling", "fp32_model_only"),
        "fp32 end-to-end / ceiling": ("fp32_end_to_end", "fp32_end_to_end_ceiling"),
        "fp32 bound, free resize / model-only": ("fp32_bound_free_resize", "fp32_model_only"),
        "fp32 bound, entropy decode only / model-only": ("fp32_bound_entropy_decode_only", "fp32_model_only"),
        "int8 end-to-end / model-only, medians": ("int8_end_to_end", "int8_model_only"),
        "int8 / fp32 model-only": ("int8_model_only", "fp32_model_only"),
        "int8 / fp32 end-to-end": ("int8_end_to_end", "fp32_end_to_end"),
    }
    return {name: round(figures[a] / figures[b], 3) for name, (a, b) in wanted.items() if a in figures and b in figures}


def _record(path: str):
    from knockoff.data.records import ImageRecord

    return ImageRecord(path=path)


if __name__ == "__main__":
    main()
