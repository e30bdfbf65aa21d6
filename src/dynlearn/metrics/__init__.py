"""Pure array metrics: scores, model errors, calibration, reconstruction metrics."""

from .returns import normalized_score

__all__ = ["normalized_score"]
