"""Pure array metrics: scores, model errors, calibration, reconstruction metrics."""

from . import calibration, dsr, model_error
from .returns import normalized_score

__all__ = ["calibration", "dsr", "model_error", "normalized_score"]
