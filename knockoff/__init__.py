"""Knockoff: screen marketplace listing photos for counterfeit products."""

__version__ = "0.1.0"
