"""The one training loop (:func:`run`) and what it needs: checkpoints, wall time across resumes, the metrics log.

Every trainer of dynlearn (the ensemble fit, the dynamics-reward fit, the DSR fit, and the offline, model-based and
online trainers) is a block function over a state that :func:`run` drives; nothing outside this package writes a
training checkpoint or tests for a stop request. The agent trainers' run-folder seeds are in :mod:`.run_folder` (not
imported here: the loop stays below the results schema, which the fits do not need).
"""

from .checkpoints import FORMAT, Checkpoint, fingerprint, key_data
from .clock import WallClock
from .loop import run
from .metrics import MetricsLog
from .schedule import Schedule
from .seeds import SeedCheckpoints, require_same_step

__all__ = ["FORMAT", "Checkpoint", "MetricsLog", "Schedule", "SeedCheckpoints", "WallClock", "fingerprint", "key_data",
           "require_same_step", "run"]
