import json

import onnxruntime as ort
import pytest

from knockoff.runtime.cpu import PROBE_PATH, build_probe, cpu_description, cpu_features, int8_exactness, probe_int8
from tests.helpers import AVX2_ONLY_CPU, run_on_emulated_cpu

PROBE_ON_EMULATED_CPU = """
import json, onnxruntime as ort
from knockoff.runtime.cpu import cpu_features, probe_int8
from knockoff.runtime.sessions import session_options
plain, knockoff = probe_int8(ort.SessionOptions()), probe_int8(session_options(threads=1))
print(json.dumps({"features": cpu_features(), "plain": [plain.exact, plain.probe_value, plain.warning],
                  "knockoff": [knockoff.exact, knockoff.probe_value]}))
"""


def test_shipped_probe_is_what_build_probe_writes(tmp_path):
    pytest.importorskip("onnx")
    build_probe(tmp_path / "probe.onnx")
    assert (tmp_path / "probe.onnx").read_bytes() == PROBE_PATH.read_bytes()


def test_int8_is_exact_here_with_knockoffs_session_settings():
    check = int8_exactness()
    assert check.exact and check.probe_value == 64.0 and check.warning is None, cpu_description()


def test_probe_catches_saturation_on_a_cpu_without_vnni_and_the_setting_removes_it():
    result = json.loads(run_on_emulated_cpu(PROBE_ON_EMULATED_CPU).strip().splitlines()[-1])
    assert result["features"] == {"AVX2": True, "AVX-512": False, "VNNI": False}, AVX2_ONLY_CPU
    exact, value, warning = result["plain"]
    # 255 x 127 pairs saturate at 32767: about half the exact 64
    assert not exact and value < 40, value
    assert "lacks VNNI" in warning and "fp32 model" in warning
    assert result["knockoff"] == [True, 64.0]


def test_plain_session_on_this_cpu_matches_its_features():
    """Without the setting, only a CPU with VNNI (or without AVX2, whose SSE kernels widen to
    16 bits before multiplying) is exact: the probe agrees with what the CPU reports."""
    features = cpu_features()
    plain = probe_int8(ort.SessionOptions())
    if features["VNNI"] or not features["AVX2"]:
        assert plain.exact
    else:
        assert not plain.exact and "VNNI" in plain.warning


def test_cpu_description_names_the_int8_features():
    described = cpu_description()
    for feature in ("AVX2", "AVX-512", "VNNI"):
        assert f"{feature} yes" in described or f"{feature} no" in described


def test_the_kernels_avx_vnni_flag_counts_only_where_its_flags_are_this_cpus():
    """Under QEMU's user mode /proc/cpuinfo is the host's: an Alder Lake or Sapphire Rapids
    host's avx_vnni must not make an emulated AVX2-only CPU look as if it had VNNI."""
    from knockoff.runtime.sessions import _flags_describe_this_cpu

    host = {"avx2", "avx512f", "avx512_vnni", "avx_vnni"}
    alder_lake = {"avx2", "avx_vnni"}
    assert _flags_describe_this_cpu(host, {"AVX2": True, "AVX512F": True, "AVX512VNNI": True})
    assert not _flags_describe_this_cpu(host, {"AVX2": True, "AVX512F": False, "AVX512VNNI": False})  # emulated EPYC-Rome
    assert _flags_describe_this_cpu(alder_lake, {"AVX2": True, "AVX512F": False, "AVX512VNNI": False})
