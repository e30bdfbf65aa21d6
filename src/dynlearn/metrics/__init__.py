"""Pure array metrics: scores, model errors, calibration, reconstruction metrics."""

from . import model_error
from .returns import normalized_score

__all__ = ["model_error", "normalized_score"]
