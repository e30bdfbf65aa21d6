"""The one training loop (:func:`run`) and what it needs: checkpoints, wall time across resumes, the metrics log.

Every trainer of dynlearn (the ensemble fit, the dynamics-reward fit, the DSR fit, and the offline, model-based and
online trainers) is a block function over a state that :func:`run` drives; nothing outside this package writes a
training checkpoint or tests for a stop request. The agent trainers' run-folder seeds are in :mod:`.run_folder` (not
imported here: the loop stays below the results schema, which the fits do not need).

Its rows go to ``metrics.jsonl`` and, when switched on, to TensorBoard, Weights & Biases or MLflow: ``--log-to
tensorboard,wandb,mlflow`` on the command line, ``with dl.training.log_to("tensorboard"): ...`` in Python, or
``DYNLEARN_LOG_TO`` in the environment (:mod:`.sinks`).
"""

from .checkpoints import FORMAT, Checkpoint, fingerprint, key_data
from .clock import WallClock
from .loop import run
from .metrics import MetricsLog
from .schedule import Schedule
from .seeds import SeedCheckpoints, require_same_step
from .sinks import NAMES as SINK_NAMES
from .sinks import RunLog, Sink, SinkFailed, log_to, requested, sink_names, sinks_from_names

__all__ = ["FORMAT", "SINK_NAMES", "Checkpoint", "MetricsLog", "RunLog", "Schedule", "SeedCheckpoints", "Sink", "SinkFailed",
           "WallClock", "fingerprint", "key_data", "log_to", "require_same_step", "requested", "run", "sink_names",
           "sinks_from_names"]
