"""Figures and documents drawn from the model with matplotlib: diagrams, later reports."""
