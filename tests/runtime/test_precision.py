"""Which model screens: int8 where the CPU runs it exactly and fast (VNNI), else fp32, saying so."""

import pytest
from typer.testing import CliRunner

from knockoff.runtime.precision import choose_model
from knockoff.runtime.sessions import EXACT_INT8_SETTING, session_options


@pytest.fixture
def models(tmp_path):
    (tmp_path / "knockoff.onnx").write_bytes(b"fp32")
    (tmp_path / "knockoff.int8.onnx").write_bytes(b"int8")
    return tmp_path


@pytest.mark.parametrize("asked, vnni, path, precision, noted", [
    ("fp32", True, "knockoff.onnx", "fp32", False),
    ("int8", True, "knockoff.int8.onnx", "int8", False),
    ("int8", False, "knockoff.onnx", "fp32", True),  # no VNNI: falls back, and says so
    ("auto", True, "knockoff.int8.onnx", "int8", False),
    ("auto", False, "knockoff.onnx", "fp32", False),
])
def test_the_model_follows_the_cpu(models, asked, vnni, path, precision, noted):
    chosen = choose_model(models / "knockoff.onnx", asked, vnni=vnni)
    assert (chosen.path, chosen.precision, chosen.note is not None) == (models / path, precision, noted)
    if noted:
        assert "falls back to fp32" in chosen.note and "VNNI" in chosen.note


def test_an_int8_file_named_outright_is_int8_where_it_pays_and_fp32_elsewhere(models):
    assert choose_model(models / "knockoff.int8.onnx", "fp32", vnni=True).precision == "int8"
    fallback = choose_model(models / "knockoff.int8.onnx", "fp32", vnni=False)
    assert fallback.path == models / "knockoff.onnx" and "falls back" in fallback.note


def test_no_int8_export_means_fp32(tmp_path):
    (tmp_path / "knockoff.onnx").write_bytes(b"fp32")
    chosen = choose_model(tmp_path / "knockoff.onnx", "int8", vnni=True)
    assert chosen.precision == "fp32" and "knockoff export --int8" in chosen.note
    with pytest.raises(ValueError):
        choose_model(tmp_path / "knockoff.onnx", "int4")


@pytest.mark.parametrize("vnni", [True, False])
def test_the_exact_int8_switch_is_set_only_without_vnni(monkeypatch, vnni):
    monkeypatch.setattr("knockoff.runtime.sessions.cpu_features", lambda: {"AVX2": True, "AVX-512": vnni, "VNNI": vnni})
    entries = session_options(threads=1).get_session_config_entry
    if vnni:
        with pytest.raises(Exception):  # unset: onnxruntime knows no such entry
            entries(EXACT_INT8_SETTING[0])
    else:
        assert entries(EXACT_INT8_SETTING[0]) == EXACT_INT8_SETTING[1]


def test_screen_says_when_int8_falls_back(monkeypatch, tiny_onnx, tiny_gallery, tmp_path):
    from knockoff.cli import app
    from tests.helpers import SAMPLE

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    (tmp_path / "m.int8.onnx").write_bytes(tiny_onnx.read_bytes())
    avx2_only = lambda: {"AVX2": True, "AVX-512": False, "VNNI": False}  # noqa: E731
    monkeypatch.setattr("knockoff.runtime.sessions.cpu_features", avx2_only)
    monkeypatch.setattr("knockoff.runtime.cpu.cpu_features", avx2_only)  # what the message describes
    photo = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[0]
    done = CliRunner().invoke(app, ["screen", str(photo), "--out", str(tmp_path / "r.parquet"), "--model", str(model),
                                    "--index", str(tiny_gallery), "--precision", "int8", "--no-regions"])
    assert done.exit_code == 0, done.output
    assert "int8 falls back to fp32 on this CPU" in done.output and "VNNI no" in done.output
