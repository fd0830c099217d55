"""Metrics, interpretation, plots and reports."""
