"""`knockoff evaluate`: how well a model and its gallery judge photos they have not seen.

Takes exported models and labelled splits; gives reports/metrics.json and plots: ROC-AUC,
precision and recall at the flag, product top-1, the open world's flags on unmonitored and
genuine-only photos (evaluate.py, open_world_report.py), from metrics computed here
(metrics.py) rather than borrowed.
"""
