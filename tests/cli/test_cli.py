import pytest
from typer.testing import CliRunner

from knockoff.cli import app

runner = CliRunner()
COMMANDS = ["screen", "show", "prepare", "train", "export", "index", "evaluate"]


def test_every_command_is_listed_with_a_summary():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    # pipeline stages read params.yaml; screening is configured by its options alone
    assert ("--params" in result.output) == (command not in ("screen", "show"))


def test_screen_without_a_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["screen", str(tmp_path), "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 1 and "missing.onnx not found" in result.output


def test_export_needs_a_checkpoint_or_a_backbone():
    result = runner.invoke(app, ["export"])
    assert result.exit_code == 1 and "CHECKPOINT or --backbone" in result.output


def test_a_typo_in_params_is_an_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  sourcess: {}\n")
    result = runner.invoke(app, ["prepare", "--params", str(params), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "unknown keys ['sourcess']" in result.output


def test_help_texts_keep_the_names_of_extras():
    """Rich markup used to eat `[serve]` and `[gpu]` from the help (issue 11)."""
    review = CliRunner().invoke(app, ["review", "--help"], terminal_width=200)
    screen = CliRunner().invoke(app, ["screen", "--help"], terminal_width=200)
    assert "Needs the [serve] extra." in " ".join(review.output.split())
    assert "pip install 'knockoff[gpu]'" in " ".join(screen.output.split())


def test_screening_nothing_warns_and_fails_unless_allowed(tiny_onnx, tiny_gallery, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["--model", str(tiny_onnx), "--index", str(tiny_gallery)]
    for inputs in ([str(empty)], [str(tmp_path / "nothing-*.jpg")]):
        result = CliRunner().invoke(app, ["screen", *inputs, "--out", str(tmp_path / "r.parquet"), *common])
        assert result.exit_code == 1 and "warning: no image in" in result.output, result.output
        (tmp_path / "r.parquet").unlink(missing_ok=True)
    allowed = CliRunner().invoke(app, ["screen", str(empty), "--out", str(tmp_path / "ok.parquet"), "--allow-empty", *common])
    assert allowed.exit_code == 0 and "screened 0 images" in allowed.output


def test_index_add_catalogue_refuses_a_bad_row_and_leaves_the_gallery_as_it_was(tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    import shutil

    from tests.helpers import SAMPLE

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    gallery = tmp_path / "gallery"
    shutil.copytree(tiny_gallery, gallery)
    before = (gallery / "gallery.json").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("product,brand,retail_price,currency\nnike air force,nike,about 100,USD\n")
    result = runner.invoke(app, ["index", "add", "--catalogue", str(bad), "--index", str(gallery), "--model", str(tiny_onnx)])
    assert result.exit_code == 1 and "line 2: retail_price 'about 100' is not a number" in result.output
    assert (gallery / "gallery.json").read_text() == before
    good = tmp_path / "catalogue.csv"
    good.write_text("product,brand,retail_price,currency,official_photos\n"
                    f"Nike Air Force 1,nike,110,USD,{SAMPLE / 'official' / 'air-force-1-white.jpg'}\n")
    result = runner.invoke(app, ["index", "add", "--catalogue", str(good), "--index", str(gallery), "--model", str(tiny_onnx)])
    assert result.exit_code == 0, result.output
    assert "added 1 references" in result.output and "Nike Air Force 1 (the gallery's nike air force)" in result.output
    assert runner.invoke(app, ["index", "add", "--index", str(gallery)]).exit_code == 1  # nothing to add


def test_the_index_stage_keeps_the_catalogue_its_params_name(tiny_onnx, tmp_path, monkeypatch):
    """A rebuilt gallery (`dvc repro`) keeps the brand's catalogue when params name it."""
    import yaml

    from knockoff.data.catalogue import Catalogue
    from knockoff.gallery.store import read_info
    from tests.helpers import SAMPLE

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"index": {"references": ["sneakers/train"], "calibration": "sneakers/valid",
                                                "catalogue": str(SAMPLE / "catalogue.csv"), "rates": str(SAMPLE / "rates.csv")}}))
    result = runner.invoke(app, ["index", "--model", str(tiny_onnx), "--params", str(params), "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    kept = Catalogue.from_dict(read_info(tmp_path / "g").catalogue)
    assert [p.product for p in kept.products] == ["nike air force", "nike jordan 1"] and kept.rates["EUR"] == 1.08
    assert "added 2 references" in result.output
