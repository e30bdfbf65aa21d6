"""Shape-annotated array aliases used in signatures across dynlearn."""

from __future__ import annotations

from typing import TypeAlias

import jax
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

ArrayLike: TypeAlias = jax.Array | np.ndarray
Key: TypeAlias = PRNGKeyArray

__all__ = ["Array", "ArrayLike", "Bool", "Float", "Int", "Key"]
