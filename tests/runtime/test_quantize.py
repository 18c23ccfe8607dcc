import json
import warnings

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from knockoff.cli import app
from knockoff.data.records import ImageRecord
from knockoff.gallery.store import Gallery
from knockoff.runtime.batches import decode_batches
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.runtime.quantize import calibration_images, float_convolutions, int8_path, quantize_int8
from knockoff.screening.screen import screen
from tests.helpers import SAMPLE, run_on_emulated_cpu

EMBED_ON_EMULATED_CPU = """
import sys, numpy as np
from knockoff.runtime.embedding import OnnxEmbedder
model, images, out = sys.argv[1:] if len(sys.argv) > 3 else {args}
np.save(out, OnnxEmbedder(model).embed(np.load(images)))
"""


@pytest.fixture(scope="module")
def tiny_int8(tiny_onnx, tmp_path_factory):
    images = calibration_images([str(SAMPLE / "sneakers" / "train")], 32, OnnxEmbedder(tiny_onnx).info.input_size)
    out = tmp_path_factory.mktemp("int8") / "tiny.int8.onnx"
    quantize_int8(tiny_onnx, out, images)
    return out


def _int8_weighted_convolutions(path) -> set[str]:
    graph = onnx.load(str(path)).graph
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    return {node.name for node in graph.node if node.op_type == "Conv" and node.input[1] in dequantized}


def test_int8_model_is_qdq_with_a_float_stem_and_first_block(tiny_onnx, tiny_int8):
    graph = onnx.load(str(tiny_int8)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "no int8 weights"
    convolutions = [node.name for node in onnx.load(str(tiny_onnx)).graph.node if node.op_type == "Conv"]
    kept = float_convolutions(onnx.load(str(tiny_onnx)))
    assert kept == convolutions[:3]  # the stem, the first block's depthwise and pointwise
    quantized = _int8_weighted_convolutions(tiny_int8)
    assert not quantized & set(kept), "a convolution kept float got int8 weights"
    assert set(convolutions[3:]) <= quantized


def test_int8_keeps_as_many_leading_convolutions_float_as_asked(tiny_onnx, tmp_path):
    from knockoff.runtime.quantize import QuantizeConfig

    images = calibration_images([str(SAMPLE / "sneakers" / "train")], 8, OnnxEmbedder(tiny_onnx).info.input_size)
    out = tmp_path / "stem-only.int8.onnx"
    quantize_int8(tiny_onnx, out, images, QuantizeConfig(leading_float=1))
    convolutions = [node.name for node in onnx.load(str(tiny_onnx)).graph.node if node.op_type == "Conv"]
    assert _int8_weighted_convolutions(out) == set(convolutions[1:])
    assert json.loads(OnnxEmbedder(out).info.quantization)["float_convolutions"] == 1
    for impossible in (-1, len(convolutions)):
        with pytest.raises(ValueError, match="leading_float"):
            quantize_int8(tiny_onnx, tmp_path / "never.onnx", images, QuantizeConfig(leading_float=impossible))
    assert not (tmp_path / "never.onnx").exists()


def test_int8_shares_the_fp32_embedding_space(tiny_onnx, tiny_int8, tiny_gallery, sample_photos, tmp_path):
    fp32, int8 = OnnxEmbedder(tiny_onnx), OnnxEmbedder(tiny_int8)
    assert int8.info.precision == "int8" and int8.info.version != fp32.info.version
    assert int8.info.space == fp32.info.version
    Gallery.load(tiny_gallery, model=int8.info)  # accepted: same space
    images = np.concatenate([b.images for b in decode_batches([ImageRecord(path=str(p)) for p in sample_photos],
                                                              int8.info.input_size)])
    cosine = (fp32.embed(images) * int8.embed(images)).sum(axis=1)
    assert cosine.mean() > 0.95, cosine
    quantization = json.loads(int8.info.quantization)
    assert quantization["runtime"] == {"session.x64quantprecision": "1 without VNNI"}
    assert quantization["weights"] == "int8" and quantization["calibration"]["method"] == "percentile"
    summary = screen([str(SAMPLE / "sneakers" / "valid")], tmp_path / "r.parquet", tiny_int8, tiny_gallery)
    assert summary.model_version == int8.info.version and summary.failed == 0


def test_export_int8_alone_quantizes_the_existing_model(tiny_onnx, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    params = tmp_path / "params.yaml"
    params.write_text(f"quantize:\n  calibration: [{SAMPLE / 'sneakers' / 'train'}]\n  count: 16\n")
    result = CliRunner().invoke(app, ["export", "--int8", "--out", str(model), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert int8_path(model).is_file() and "quantized int8" in result.output
    again = CliRunner().invoke(app, ["export", "--int8", "--out", str(int8_path(model)), "--params", str(params)])
    assert again.exit_code == 1 and "already int8" in again.output


def test_evaluate_reports_int8_beside_fp32_against_the_fp32_gallery(tiny_onnx, tiny_int8, tmp_path, monkeypatch):
    from knockoff.evaluation.evaluate import EmbeddingCache, EvaluateConfig, evaluate
    from knockoff.scoring import ScorerParams

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    config = EvaluateConfig(sneakers_gallery="sneakers/train", sneakers_queries="sneakers/valid")
    embedded = []
    real_get = EmbeddingCache.get
    monkeypatch.setattr(EmbeddingCache, "get", lambda self, e, spec: embedded.append((e.info.precision, spec)) or real_get(self, e, spec))
    results = evaluate({"finetuned": tiny_onnx, "int8": tiny_int8}, config, ScorerParams(k=5), tmp_path)
    assert results["int8"]["precision"] == "int8" and results["int8"]["sneakers"]["queries"] == 32
    difference = results["int8"]["sneakers"]["roc_auc"] - results["finetuned"]["sneakers"]["roc_auc"]
    assert results["int8_vs_fp32"]["roc_auc"] == difference
    # the int8 model embeds only the queries; its gallery is the fp32 model's
    assert ("int8", "sneakers/train") not in embedded and ("int8", "sneakers/valid") in embedded


def test_int8_gives_the_same_embeddings_on_a_cpu_without_vnni(tiny_onnx, tiny_int8, sample_photos, tmp_path):
    """The defect of issue 9: on AVX2 without VNNI the int8 kernels saturated (cosine 0.92)."""
    int8 = OnnxEmbedder(tiny_int8)
    images = np.concatenate([b.images for b in decode_batches([ImageRecord(path=str(p)) for p in sample_photos],
                                                              int8.info.input_size)])
    np.save(tmp_path / "images.npy", images)
    arguments = (str(tiny_int8), str(tmp_path / "images.npy"), str(tmp_path / "emulated.npy"))
    run_on_emulated_cpu(EMBED_ON_EMULATED_CPU.format(args=arguments))
    emulated, here = np.load(tmp_path / "emulated.npy"), int8.embed(images)
    cosine = (OnnxEmbedder(tiny_onnx).embed(images) * emulated).sum(axis=1)
    assert cosine.mean() > 0.95, cosine
    np.testing.assert_allclose(emulated, here, atol=1e-4)


def test_loading_int8_where_it_is_inexact_warns_naming_the_instruction(tiny_int8, monkeypatch):
    from knockoff.runtime import cpu

    inexact = cpu.Int8Exactness(False, 32.5, "this CPU lacks VNNI (AVX512-VNNI or AVX-VNNI): ...")
    monkeypatch.setattr(cpu, "int8_exactness", lambda: inexact)
    with pytest.warns(UserWarning, match="lacks VNNI"):
        OnnxEmbedder(tiny_int8)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OnnxEmbedder(tiny_int8)  # exact here: silent


def test_calibration_photos_that_cannot_be_read_say_where_they_were_looked_for(tmp_path, monkeypatch):
    manifest = tmp_path / "refs.csv"
    manifest.write_text("path,product,label\nsneakers/train/images/a.jpg,shoe,genuine\nsneakers/train/images/b.jpg,shoe,fake\n")
    monkeypatch.setenv("KNOCKOFF_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"none of the 2 calibration photos.*data root .*nowhere.*KNOCKOFF_DATA"):
        calibration_images([str(manifest)], 8, 64)
