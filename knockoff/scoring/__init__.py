"""Scoring: raw k-NN log-odds (knn), their calibration (calibration), and the open-world
verdict of each photo: status, support and per-product calibration (open_world)."""

from knockoff.scoring.calibration import Calibration, fit_calibration, threshold_for_precision
from knockoff.scoring.knn import ScorerParams, knn_log_odds
from knockoff.scoring.open_world import (
    ERROR, NO_MATCH, SCORED, STATUSES, UNSUPPORTED, HeldBack, OpenWorld, OpenWorldParams, decide, fit_open_world,
)

__all__ = [
    "Calibration", "fit_calibration", "threshold_for_precision", "ScorerParams", "knn_log_odds",
    "ERROR", "NO_MATCH", "SCORED", "STATUSES", "UNSUPPORTED", "HeldBack", "OpenWorld", "OpenWorldParams",
    "decide", "fit_open_world",
]
