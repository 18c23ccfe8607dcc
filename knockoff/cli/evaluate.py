"""`knockoff evaluate`: the model measured against the frozen backbone (DVC stage `evaluate`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import DEFAULT_PARAMS, ParamsOption, fail

app = typer.Typer()


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Fine-tuned ONNX model.")] = Path("models/knockoff.onnx"),
    baseline: Annotated[Optional[Path], typer.Option(help="Frozen pretrained backbone (ONNX) measured in the same run.")] = Path("models/baseline.onnx"),
    int8: Annotated[Optional[Path], typer.Option(help="int8 model (`export --int8`) measured beside fp32, against the fp32 galleries.")] = None,
    index: Annotated[Path, typer.Option(help="Gallery whose scorer settings to use.")] = Path("models/gallery"),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and plots/.")] = Path("reports"),
    previous: Annotated[str, typer.Option(help="The previous model to compare with: a path, 'git:REV' (the --model file at that revision) or 'none'.")] = "git:HEAD",
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Measure the fine-tuned model against the frozen backbone (DVC stage `evaluate`).

    Sneakers valid against a train gallery: ROC-AUC, average precision, recall at 95%
    precision, product top-1. Grocery val against iconic (then iconic + train) references:
    Recall@1. With --int8, the int8 model's figures beside fp32's. Writes
    reports/metrics.json and ROC/PR plots. The previous model (by default
    the one committed at git HEAD) is measured on the same photos; if the new one is worse
    beyond `evaluate.regression_tolerance`, the command fails (and so the DVC stage).
    """
    import tempfile

    from knockoff.evaluation.evaluate import EvaluateConfig, RegressionError, model_at_revision
    from knockoff.evaluation.evaluate import evaluate as run_evaluate
    from knockoff.gallery.store import read_info
    from knockoff.params import load_config

    models = {"finetuned": model}
    if baseline is not None:
        models["pretrained"] = baseline
    if int8 is not None:
        models["int8"] = int8
    with tempfile.TemporaryDirectory() as scratch:
        previous_model = None
        if previous.startswith("git:"):
            previous_model = model_at_revision(model, previous[4:], Path(scratch) / "previous.onnx")
            if previous_model is None:
                typer.echo(f"no {model} at {previous[4:]}: nothing to compare with", err=True)
        elif previous != "none":
            previous_model = Path(previous)
        try:
            scorer = read_info(index).scorer
            results = run_evaluate(models, load_config(EvaluateConfig, "evaluate", params), scorer, out, previous_model, index)
        except (FileNotFoundError, ValueError, RegressionError) as error:
            fail(error)
    json.dump(results, sys.stdout, indent=2)
    typer.echo()
