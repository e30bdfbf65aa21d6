"""The optional sinks: TensorBoard, Weights & Biases and MLflow (switched on as :mod:`.sinks` says).

Each takes the folder of the run's ``metrics.jsonl`` (a seed's folder for trainers with seed folders) and the step a
resumed run continues from, imports its package only then (a ConfigError naming the extra when it is missing), and
logs every number of a row (``wall_s`` included) at the loop's step.

- :class:`TensorBoardSink` (``tensorboardX``, no TensorFlow or PyTorch needed): event files in ``<folder>/tensorboard/``;
  view with ``tensorboard --logdir <run folder>``. A resumed run adds a file to the same logdir that hides the steps
  after the checkpoint it continues from (they run again and are logged again), as the JSONL file drops them.
- :class:`WandbSink` (``wandb``): one W&B run per metrics file, in project ``$WANDB_PROJECT`` (default ``dynlearn``),
  grouped by run folder and named ``<run folder>/<seed folder>``; W&B's files in ``<folder>/wandb/``. W&B's own
  settings apply as usual (``WANDB_MODE=offline``, ``WANDB_ENTITY``, ``wandb login``). A resumed run continues the
  same W&B run (its id is kept in ``<folder>/wandb/dynlearn_run_id``); W&B ignores the steps it already has.
- :class:`MLflowSink` (``mlflow``): one MLflow run per metrics file, in experiment ``$MLFLOW_EXPERIMENT_NAME``
  (default ``dynlearn``), at ``$MLFLOW_TRACKING_URI``, by default a SQLite store in the run folder,
  ``<run folder>/mlflow/mlflow.db`` (``mlflow ui --backend-store-uri sqlite:///<run folder>/mlflow/mlflow.db``). A
  resumed run continues the same MLflow run (its id is kept in ``<folder>/mlflow/run_id``).

Also here, for any sink: :func:`import_extra` (an optional package, or the ConfigError that names its extra) and
:func:`scalars` (a row's numbers).
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

ENV = "DYNLEARN_LOG_TO"
"""The environment variable that switches sinks on when no :func:`.sinks.log_to` is active."""


def import_extra(package: str, extra: str) -> Any:
    """``import package``, or a ConfigError naming the extra ``dynlearn[extra]`` that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(f"logging to {extra} needs the {package} package, which is not installed. Fix: pip install "
                          f"\"dynlearn[{extra}]\", or leave {extra} out of --log-to / log_to(...) / {ENV}.") from None


def scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a row as floats, for sinks that take scalars only: nested dicts flatten to ``a/b``; None,
    strings and arrays of more than one value are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, name + "/"))
            continue
        array = np.asarray(value) if value is not None else None
        if array is not None and array.size == 1 and array.dtype.kind in "biuf":
            out[name] = float(array.reshape(()))
    return out


def run_names(folder: str | os.PathLike) -> tuple[Path, str]:
    """``(run folder, run name)`` of a metrics folder: a seed folder ``<run>/seed_K`` belongs to ``<run>`` and is named
    ``"<run>/seed_K"``; any other folder is its own run, named after itself."""
    folder = Path(folder).resolve()
    if re.fullmatch(r"seed_\d+", folder.name):
        return folder.parent, f"{folder.parent.name}/{folder.name}"
    return folder, folder.name


class TensorBoardSink:
    """Scalars to TensorBoard event files in ``<folder>/tensorboard/``."""

    def __init__(self, folder: str | os.PathLike, resume_step: int = 0):
        tensorboardx = import_extra("tensorboardX", "tensorboard")
        self.logdir = Path(folder) / "tensorboard"
        # purge_step: TensorBoard hides the steps after resume_step logged by an earlier invocation (they are logged
        # again). The file name starts with the second it was made; the suffix (nanoseconds) keeps the files of two
        # invocations in one second apart and in order.
        self.writer = tensorboardx.SummaryWriter(str(self.logdir), purge_step=resume_step + 1, flush_secs=30,
                                                 filename_suffix=f".{time.time_ns()}")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        now = time.time()
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, step, walltime=now)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """One Weights & Biases run per metrics file (see the module docstring for its project, group and name)."""

    def __init__(self, folder: str | os.PathLike, resume_step: int = 0):
        wandb = import_extra("wandb", "wandb")
        folder = Path(folder)
        run, name = run_names(folder)
        id_file = folder / "wandb" / "dynlearn_run_id"
        run_id = id_file.read_text().strip() if resume_step and id_file.is_file() else None
        run_id = run_id or secrets.token_hex(8)
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "dynlearn", group=run.name, name=name, id=run_id,
                              dir=str(folder), resume="allow", reinit="create_new")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.log(scalars(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowSink:
    """One MLflow run per metrics file (see the module docstring for its tracking URI, experiment and name)."""

    def __init__(self, folder: str | os.PathLike, resume_step: int = 0):
        import_extra("mlflow", "mlflow")
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        folder = Path(folder)
        run, name = run_names(folder)
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        local = run / "mlflow"
        if not uri:
            local.mkdir(parents=True, exist_ok=True)
        self.client, self._metric = MlflowClient(tracking_uri=uri or f"sqlite:///{local / 'mlflow.db'}"), Metric
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "dynlearn"
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment is not None else self.client.create_experiment(
            experiment_name, artifact_location=None if uri else (local / "artifacts").as_uri())
        id_file = folder / "mlflow" / "run_id"
        self.run_id = id_file.read_text().strip() if resume_step and id_file.is_file() else None
        if self.run_id is not None:
            try:
                self.client.update_run(self.run_id, status="RUNNING")
            except Exception:  # noqa: BLE001 - that run is gone from the store: a new one
                self.run_id = None
        if self.run_id is None:
            self.run_id = self.client.create_run(experiment_id, run_name=name, tags={"dynlearn.run": run.name}).info.run_id
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(self.run_id + "\n")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._metric(_mlflow_key(k), v, now, step) for k, v in scalars(metrics).items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _mlflow_key(key: str) -> str:
    """MLflow allows letters, digits, ``_ - . : /`` and spaces in a metric name; anything else becomes ``_``."""
    return re.sub(r"[^\w\-.:/ ]", "_", key)
