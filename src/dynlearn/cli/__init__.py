"""The ``dynlearn`` command line. Parses arguments into config dataclasses and calls the public API; no logic of its own.

One module per group of commands (:mod:`~dynlearn.cli.data`, :mod:`~dynlearn.cli.train`, :mod:`~dynlearn.cli.model`,
:mod:`~dynlearn.cli.dsr`); :mod:`~dynlearn.cli.parsing` turns arguments into configs and errors into one line.
``dynlearn train NAME`` exists for every model-based method registered (:func:`dynlearn.algos.register`) when
:func:`main` runs. Errors in the user's input (``DynlearnError``) print one line and exit with status 2, without a
traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings

from .. import agents
from ..algos import coplanner, hypercrl, mbpo_online
from ..algos.pets import PETSJob
from ..algos.pets import run_job as run_pets
from ..algos.registry import method, names
from ..checkpoint import replacing
from ..data._csv import DataWarning
from ..default_job import DefaultJobConfig, run_default_job
from ..dsr.jobs import DSREval, DSRFit
from ..errors import DynlearnError, RunFinished
from ..interrupt import Stopped
from ..planning.job import PlanJob, run_plan
from ..planning.navigation_job import NavigationFit, NavigationPlan, navigation_fit, navigation_plan
from ..training import log_to
from . import data, dsr, model, train
from .parsing import Command, command, force_replace_folders, log_to_option, preset_command, user_message

__all__ = ["USAGE", "main"]


def commands() -> dict[str, Command]:
    """Every command; one ``train NAME`` per model-based method registered when this is called, and per agent."""
    methods = {f"train {name}": train.method_job(method(name)) for name in names()}
    learners = {f"train {name}": train.agent_job(name) for name in agents.names()}
    return {
        "run": command(DefaultJobConfig, run_default_job),
        "data info": command(data.DataInfo, data.data_info),
        "data generate": command(data.DataGenerate, data.data_generate),
        "data convert": command(data.DataConvert, data.data_convert),
        "train": Command(train.AgentJob, train.run_unnamed),
        **{name: Command(job, lambda args, prog, job=job: train.run_method(job, args, prog)) for name, job in methods.items()},
        **{name: Command(job, lambda args, prog, job=job: train.run_agent(job, args, prog)) for name, job in learners.items()},
        "train pets": command(PETSJob, run_pets),
        "train mbpo-online": preset_command(mbpo_online.MBPOOnlineJob, mbpo_online.run_job, mbpo_online.MBPOOnlineConfig.preset),
        "train coplanner": preset_command(coplanner.COPlannerJob, coplanner.run_job, coplanner.COPlannerConfig.preset),
        "train hypercrl": command(hypercrl.HyperCRLJob, hypercrl.run_job),
        "plan": command(PlanJob, run_plan),
        "navigation fit": command(NavigationFit, navigation_fit),
        "navigation plan": command(NavigationPlan, navigation_plan),
        "tasks": command(data.TasksList, data.tasks),
        "model train": Command(model.ModelTrain, model.run_model_train),
        "model eval": command(model.ModelEval, model.model_eval),
        "model reward": command(model.ModelReward, model.model_reward),
        "dsr fit": command(DSRFit, dsr.dsr_fit),
        "dsr eval": command(DSREval, dsr.dsr_eval),
    }


USAGE = """usage: dynlearn COMMAND [ARGS]   (dynlearn COMMAND --help for a command's options)

commands:
  run             the built-in default job, end to end (--quick for a smoke test)
  data info       what a dataset holds, and problems found in it
  data generate   collect a dataset in a task with a behaviour policy (D4RL layout)
  data convert    convert Minari / .npz / .csv data to the D4RL layout
  train METHOD    train an offline model-based method on a dataset; METHOD: {methods}
  train ALGO      train a model-free agent offline on a dataset (td3bc, iql, cql, bc, ...) or online in a task (--online)
  train pets      PETS online in a task: CEM over an ensemble refitted as data comes in
  train mbpo-online  MBPO online in a task: SAC on branched rollouts of an ensemble refitted every 250 steps
  train coplanner MBPO with COPlanner's uncertainty-aware MPC (conservative rollouts, optimistic exploration)
  train hypercrl  HyperCRL: continual MBRL over a sequence of tasks with a hypernetwork dynamics model and CEM
  plan            model-predictive control (CEM, MPPI, random shooting) with a saved model, evaluated in the task
  navigation fit  2-D navigation: collect data, fit a forward model with a failure (collision) head, save it
  navigation plan 2-D navigation: MPPI over a saved failure model (or --true-model) on solvable maps; success rates
  tasks           list the registered tasks
  model train     fit a dynamics ensemble to a dataset (run folder: model, fit curve, one-step errors)
  model eval      a fitted model's one-step and k-step errors and penalty calibration (--ood other data)
  model reward    learn MOREC's dynamics reward for a fitted model (used by train morec-mopo|morec-mobile)
  dsr fit         fit a reconstruction model (shPLRNN/AL-RNN + teacher forcing, or SINDy/neural ODE/ESN) to a time series
  dsr eval        re-measure a saved dsr fit run on its test series or new data

--force replaces only what dynlearn wrote; --force --force-replace-folder PATH also replaces a folder it did not write.
--log-to tensorboard,wandb,mlflow: a training command also logs its metrics there (pip install "dynlearn[tensorboard]", ...);
metrics.jsonl is always written.
"""
"""The help ``dynlearn`` prints; ``{methods}``: the registered model-based methods."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class _Terminated(BaseException):
    """SIGTERM outside a training loop (whose own handler checkpoints instead): start-up, data generation, evaluation."""


def _terminated(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run ``dynlearn ARGV``; returns the exit status (2: a user error, printed as one line; 130: stopped and
    checkpointed; 143: stopped by SIGTERM before anything was checkpointed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # a training loop swaps in its graceful stop while it runs
    every = commands()
    name = next((n for n in sorted(every, key=len, reverse=True) if argv[: len(n.split())] == n.split()), None)
    if name is None:
        print(USAGE.format(methods=", ".join(names())), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    chosen = every[name]
    try:
        args, replace = force_replace_folders(argv[len(name.split()):])
        args, sinks = log_to_option(args)
        with replacing(*replace), log_to(sinks), warnings.catch_warnings():  # a dataset warning (e.g. a guessed encoding): one line
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = _show_warning
            chosen.run(args, f"dynlearn {name}")
    except _Terminated:
        print(f"dynlearn: stopped by SIGTERM; `dynlearn {name}` had checkpointed nothing yet, so there is nothing to resume. "
              "Run it again (with --resume if it had already created its run folder).", file=sys.stderr)
        return 143
    except RunFinished as e:  # --resume of a finished run: nothing to do, its results are kept
        print(f"dynlearn: {e}")
        return 0
    except Stopped as e:  # SIGTERM / Ctrl-C during training: checkpointed, resumable
        print(f"dynlearn: {e}", file=sys.stderr)
        return 130
    except DynlearnError as e:
        print(f"error: {user_message(e, chosen.cls, name)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
