"""Dynamical-systems reconstruction: latent piecewise-linear RNNs trained with teacher forcing.

shPLRNN and clipped shPLRNN with (adaptive) generalized teacher forcing (Hess et al., ICML 2023, arXiv 2306.04406)
and the almost-linear RNN with sparse teacher forcing and its symbolic code (Brenner et al., NeurIPS 2024,
arXiv 2410.14240). Data are plain arrays ``x [T, N]`` (or lists of them), standardised by the caller.

>>> import dynlearn.dsr as dsr
>>> model, report = dsr.fit_dsr(x, dsr.FitDSRConfig.preset("lorenz63-shplrnn"), key=jax.random.key(0))
>>> x_gen = model.generate(10_000, x0=x[0])                       # free-running reconstruction [10000, N]
>>> dsr.save("runs/l63", model, config=report.config); model = dsr.load("runs/l63")
>>> stats = dsr.subregion_stats(alrnn.generate(10_000, x0=x[0], latent=True), alrnn)   # AL-RNN symbolic code
"""

from .analysis import (
    SubregionStats,
    id_to_bits,
    subregion_bits,
    subregion_ids,
    subregion_stats,
    symbolic_sequence,
)
from .base import AbstractLatentModel
from .esn import ESN, ESNConfig, ESNReport, fit_esn
from .fit import fit_dsr
from .fit_block import make_optimizer
from .fit_config import PRESETS, FitDSRConfig
from .fit_report import FitDSRReport
from .io import load, read_config, save
from .neural_ode import NeuralODE, NeuralODEConfig, NeuralODEReport, fit_neural_ode
from .plrnn import (
    ALRNN,
    MODEL_KINDS,
    AbstractIdentityReadout,
    ShallowPLRNN,
    build_model,
    normalized_positive_definite,
)
from .sequences import TrainingDivergedError, prepare_sequences
from .sindy import SINDyConfig, SINDyModel, SINDyReport, fit_sindy
from .teacher_forcing import (
    FORCING_MODES,
    alpha_from_growth,
    anneal_alpha,
    estimate_alpha,
    force,
    forced_mse,
    forced_predictions,
    forcing_schedule,
    jacobian_product_growth,
    spectral_norms,
)

__all__ = [
    "ALRNN",
    "ESN",
    "ESNConfig",
    "ESNReport",
    "NeuralODE",
    "NeuralODEConfig",
    "NeuralODEReport",
    "SINDyConfig",
    "SINDyModel",
    "SINDyReport",
    "fit_esn",
    "fit_neural_ode",
    "fit_sindy",
    "FORCING_MODES",
    "MODEL_KINDS",
    "PRESETS",
    "AbstractIdentityReadout",
    "AbstractLatentModel",
    "FitDSRConfig",
    "FitDSRReport",
    "ShallowPLRNN",
    "SubregionStats",
    "TrainingDivergedError",
    "alpha_from_growth",
    "anneal_alpha",
    "build_model",
    "estimate_alpha",
    "fit_dsr",
    "force",
    "forced_mse",
    "forced_predictions",
    "forcing_schedule",
    "id_to_bits",
    "jacobian_product_growth",
    "load",
    "make_optimizer",
    "normalized_positive_definite",
    "prepare_sequences",
    "read_config",
    "save",
    "spectral_norms",
    "subregion_bits",
    "subregion_ids",
    "subregion_stats",
    "symbolic_sequence",
]
