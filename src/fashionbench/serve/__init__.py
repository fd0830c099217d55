"""Serving a trained model: ONNX export (export.py) and the HTTP service with its upload page (app.py)."""
