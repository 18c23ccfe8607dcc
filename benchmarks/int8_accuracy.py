"""int8 against fp32 on sneakers `valid`, on this CPU and on emulated CPUs without VNNI.

int8 arithmetic differs between x86 CPUs (knockoff/runtime/cpu.py): without VNNI, onnxruntime's
uint8 x int8 kernels saturate unless the session asks for its exact kernels, which every
Knockoff session does. This measures what a user gets, CPU by CPU:
- ROC-AUC of the int8 model's queries against the fp32 gallery (sneakers train), minus fp32's;
- cosine of each int8 embedding to its fp32 embedding: mean, 1st percentile, min;
- and, with --without-exact-setting, the same with a plain onnxruntime session (the defect).

CPUs without VNNI are emulated with QEMU's user mode (`apt-get install qemu-user`):
`--emulate EPYC-Rome` is an AMD EPYC with AVX2 and no AVX-512/VNNI, `Haswell` an Intel one,
`Nehalem` SSE4 only. The int8 embeddings are computed under the emulator (slow: about
0.7 s a photo, so --emulated-count limits them); fp32 and the gallery on the host.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/int8_accuracy.py --emulate EPYC-Rome
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from knockoff.data import read_source
from knockoff.data.records import FAKE
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery
from knockoff.runtime.batches import decode_batches
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder, embed_records


def int8_embeddings(model: Path, images: np.ndarray, exact_setting: bool, batch_size: int = 16) -> np.ndarray:
    """The int8 model's embeddings as Knockoff computes them, or with a plain session."""
    if exact_setting:
        embedder = OnnxEmbedder(model)
        run = embedder.embed
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), ort.SessionOptions(), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        run = lambda batch: session.run(None, {name: batch})[0]  # noqa: E731
    return np.concatenate([run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def emulated(cpu: str, model: Path, images: np.ndarray, exact_setting: bool, scratch: Path) -> tuple[np.ndarray, str]:
    """int8 embeddings computed in a child process under `qemu-x86_64 -cpu CPU`, and that CPU's description."""
    np.save(scratch / "images.npy", images)
    out = scratch / f"{cpu}-{int(exact_setting)}.npy"
    command = ["qemu-x86_64", "-cpu", cpu, sys.executable, __file__, "--child", str(model),
               str(scratch / "images.npy"), str(out), "1" if exact_setting else "0"]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}")
    return np.load(out), finished.stdout.strip().splitlines()[-1]


def summary(name: str, cpu: str, vectors: np.ndarray, fp32: np.ndarray, gallery: Gallery, is_fake: np.ndarray) -> dict:
    cosine = (vectors * fp32).sum(axis=1)
    fp32_auc = roc_auc(is_fake, match(gallery, fp32, with_evidence=False).raw)
    auc = roc_auc(is_fake, match(gallery, vectors, with_evidence=False).raw)
    row = {"run": name, "cpu": cpu, "photos": len(vectors), "roc_auc_fp32": round(fp32_auc, 4), "roc_auc_int8": round(auc, 4),
           "roc_auc_difference": round(auc - fp32_auc, 4), "cosine_mean": round(float(cosine.mean()), 4),
           "cosine_p1": round(float(np.percentile(cosine, 1)), 4), "cosine_min": round(float(cosine.min()), 4)}
    print(f"{name:<40} {row['photos']:>4} photos  ROC-AUC int8 {auc:.4f} fp32 {fp32_auc:.4f} ({auc - fp32_auc:+.4f})  "
          f"cosine mean {row['cosine_mean']:.4f} p1 {row['cosine_p1']:.4f} min {row['cosine_min']:.4f}\n    CPU: {cpu}",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--int8", type=Path, default=Path("models/knockoff.int8.onnx"))
    parser.add_argument("--gallery", default="data/prepared/sneakers-train.parquet")
    parser.add_argument("--queries", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--emulate", nargs="*", default=[], help="QEMU CPU models to emulate (qemu-x86_64 -cpu help)")
    parser.add_argument("--emulated-count", type=int, default=0, help="photos under emulation (0: all)")
    parser.add_argument("--without-exact-setting", action="store_true", help="also run plain sessions (shows the defect)")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-int8.json"))
    args = parser.parse_args()

    fp32 = OnnxEmbedder(args.model)
    gallery_vectors, gallery_records, _ = embed_records(fp32, list(read_source(args.gallery)), desc="gallery fp32")
    gallery = Gallery.build(gallery_vectors, gallery_records, fp32.info)
    records = list(read_source(args.queries))
    batches = list(decode_batches(records, fp32.info.input_size))
    images = np.concatenate([b.images for b in batches])
    kept = [r for b in batches for r, error in zip(b.records, b.errors) if error is None]
    is_fake = np.array([r.authenticity == FAKE for r in kept])
    fp32_vectors = fp32.embed(images)
    print(f"{len(kept)} queries from {args.queries}; int8 model {args.int8}", flush=True)

    rows = []
    settings = [True, False] if args.without_exact_setting else [True]
    for exact in settings:
        label = "this CPU" + ("" if exact else ", plain session")
        rows.append(summary(label, cpu_description(), int8_embeddings(args.int8, images, exact), fp32_vectors, gallery, is_fake))
    if args.emulate and shutil.which("qemu-x86_64") is None:
        raise SystemExit("--emulate needs qemu-x86_64 (apt-get install qemu-user)")
    count = args.emulated_count or len(images)
    with tempfile.TemporaryDirectory() as scratch:
        for cpu in args.emulate:
            for exact in settings:
                vectors, described = emulated(cpu, args.int8, images[:count], exact, Path(scratch))
                label = f"emulated {cpu}" + ("" if exact else ", plain session")
                rows.append(summary(label, described, vectors, fp32_vectors[:count], gallery, is_fake[:count]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"int8_model": OnnxEmbedder(args.int8).info.version,
                                    "fp32_model": fp32.info.version, "runs": rows}, indent=2) + "\n")
    print(f"-> {args.out}")


def child(model: str, images: str, out: str, exact_setting: str) -> None:
    np.save(out, int8_embeddings(Path(model), np.load(images), exact_setting == "1"))
    print(cpu_description())


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
