"""Registered model families."""

from .registry import count_params, create_model, list_models, model_info, register_model

__all__ = ["count_params", "create_model", "list_models", "model_info", "register_model"]
