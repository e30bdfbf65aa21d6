"""The datasets of the GTF paper (Hess et al., ICML 2023, arXiv:2306.04406; DurstewitzLab/GTF-shPLRNN, folder
``ICML2023_datasets``) as :class:`~dynlearn.data.timeseries.TimeSeries`: Lorenz-63, ECG and EEG with their own
train/test splits. The files (GPL-3.0) are not shipped: they are read in place from ``$DYNLEARN_GTF_DATA`` (or a folder
passed as ``root``), never copied.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import ConfigError, DataError
from .timeseries import TimeSeries, load_timeseries

GTF_DATA_ENV = "DYNLEARN_GTF_DATA"
"""Environment variable naming the folder with the GTF paper's ``.npy`` files (no default: the data are not shipped)."""
GTF_DATA_SOURCE = "https://github.com/DurstewitzLab/GTF-shPLRNN (folder ICML2023_datasets)"
"""Where to get the GTF paper's data."""


@dataclasses.dataclass(frozen=True)
class GTFFile:
    """One dataset of DurstewitzLab/GTF-shPLRNN (folder ``ICML2023_datasets``, commit b6172ce; GPL-3.0)."""

    train: str
    test: str
    dt: float
    time_unit: str
    note: str


GTF_DATASETS: dict[str, GTFFile] = {
    "lorenz63": GTFFile(
        "lorenz63_on0.05_train.npy", "lorenz63_test.npy", 0.01, "model time",
        "Lorenz-63 (sigma=10, rho=28, beta=8/3), standardised; train has 5% observation noise, test is noise-free. "
        "dt=0.01 checked here: a least-squares fit of the test series' central differences to the x- and z-equations "
        "gives 0.00998 and 0.00997."),
    "ecg": GTFFile(
        "ECG_pecuzal_5d_train.npy", "ECG_pecuzal_5d_test.npy", 1.0 / 700.0, "second",
        "human ECG, 5-d PECUZAL delay embedding (the embedding lags are 10, 20, 55 and 68 samples). dt=1/700 s is NOT verified "
        "against the paper: it assumes a 700 Hz recording; the series' autocorrelation peaks at 699 samples (one beat, 60 bpm at 700 Hz)."),
    "eeg": GTFFile(
        "EEG_train.npy", "EEG_test.npy", 1.0, "sample",
        "EEG, 64 channels, standardised. The sampling rate is not stated in the reference repository, so dt is one sample. "
        "In the reference repository EEG_train.npy and EEG_test.npy are the same file (identical bytes)."),
}


def gtf_data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the GTF files: ``root``, else ``$DYNLEARN_GTF_DATA``.

    Raises :class:`~dynlearn.errors.DataError` when neither is given: the data are not shipped with dynlearn.
    """
    if root is None:
        root = os.environ.get(GTF_DATA_ENV) or None
    if root is None:
        raise DataError("GTF data", f"no data folder given: {GTF_DATA_ENV} is unset and no root was passed.",
                        f"get the .npy files from {GTF_DATA_SOURCE} and set {GTF_DATA_ENV} to that folder.", key=GTF_DATA_ENV)
    return Path(root).expanduser()


def _gtf_file(folder: Path, filename: str) -> Path | None:
    """``folder/filename``, or ``folder/<sub>/filename`` as in the repository's layout (``Lorenz63/``, ``ECG/``, ...)."""
    if (folder / filename).is_file():
        return folder / filename
    return next((p for p in sorted(folder.glob(f"*/{filename}")) if p.is_file()), None)


def gtf_dataset(name: str, split: str = "train", *, root: str | os.PathLike | None = None) -> TimeSeries:
    """A dataset of Hess et al. (ICML 2023, arXiv:2306.04406): ``name`` in ``lorenz63``, ``ecg``, ``eeg``; ``split`` ``train`` or ``test``.

    The files (GPL-3.0, :data:`GTF_DATA_SOURCE`) are read where they lie: ``root``, else ``$DYNLEARN_GTF_DATA``,
    either flat or in the repository's per-system subfolders; never copy them into this repository. ``dt`` and
    its unit come from :data:`GTF_DATASETS` (see each entry's note for how sure it is).
    """
    key = name.lower().replace("-", "")
    if key not in GTF_DATASETS:
        raise ConfigError(f"gtf_dataset: unknown name '{name}'; choose one of {sorted(GTF_DATASETS)}.")
    if split not in ("train", "test"):
        raise ConfigError(f"gtf_dataset: split must be 'train' or 'test', got '{split}'.")
    entry = GTF_DATASETS[key]
    folder = gtf_data_root(root)
    filename = entry.train if split == "train" else entry.test
    path = _gtf_file(folder, filename)
    if path is None:
        raise DataError(str(folder / filename), "no such file (nor in a subfolder).",
                        f"point root= or {GTF_DATA_ENV} at the GTF paper's data folder, from {GTF_DATA_SOURCE}.")
    series = load_timeseries(path, dt=entry.dt)
    prov = {**series.provenance, "name": f"gtf/{key}/{split}", "paper": "Hess et al., ICML 2023, arXiv:2306.04406",
            "repository": "DurstewitzLab/GTF-shPLRNN@b6172ce", "license": "GPL-3.0", "time_unit": entry.time_unit, "note": entry.note}
    return dataclasses.replace(series, provenance=prov)
