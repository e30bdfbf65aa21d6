"""Datasets: containers, validation, loaders and writers; time series and ODE systems. Knows no environment.

>>> import dynlearn as dl
>>> ds = dl.data.load("hopper.hdf5", task="Hopper-v5")
>>> train, holdout = ds.split()
"""

from ._csv import DataWarning
from .buffer import ReplayBuffer
from .d4rl import load_d4rl, write_d4rl
from .dataset import Dataset, concat_datasets, derive_next_obs, from_arrays
from .load import load, register_named
from .minari import load_minari, minari_root
from .normalize import Normalizer
from .summary import DatasetSummary, summarize
from . import systems
from .tabular import Columns, load_csv, load_npz
from .gtf import gtf_dataset
from .timeseries import TimeSeries, load_timeseries
from .transitions import Transitions, concatenate, sample

__all__ = [
    "Columns", "DataWarning", "Dataset", "DatasetSummary", "ReplayBuffer", "Normalizer", "Transitions", "concat_datasets", "concatenate",
    "derive_next_obs", "from_arrays", "load", "load_csv", "load_d4rl", "load_minari", "load_npz", "minari_root", "register_named",
    "sample", "summarize", "systems", "TimeSeries", "gtf_dataset", "load_timeseries", "write_d4rl",
]
