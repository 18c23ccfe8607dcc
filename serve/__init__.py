"""The analyst review service (installed as `knockoff_serve`): `knockoff review RESULTS`."""
