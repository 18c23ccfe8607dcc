"""Scoring: from a photo's nearest references to a calibrated verdict.

Raw k-NN log-odds (knn.py), their calibration (calibration.py), the open-world verdict of
each photo: status, support and per-product calibration (open_world.py), and the held-back
photos' verdicts that listing calibration reads (held_back.py). Pure numpy: no index, no model.
"""

from knockoff.scoring.calibration import Calibration, fit_calibration, threshold_for_precision
from knockoff.scoring.knn import ScorerParams, knn_log_odds
from knockoff.scoring.open_world import COPY, ERROR, NO_MATCH, SCORED, STATUSES, UNSUPPORTED, HeldBack, OpenWorld, OpenWorldParams, decide, fit_open_world

__all__ = [
    "Calibration", "fit_calibration", "threshold_for_precision", "ScorerParams", "knn_log_odds",
    "COPY", "ERROR", "NO_MATCH", "SCORED", "STATUSES", "UNSUPPORTED", "HeldBack", "OpenWorld", "OpenWorldParams",
    "decide", "fit_open_world",
]
