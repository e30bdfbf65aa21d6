"""Markdown tables and figures of run folders, in one place.

- :mod:`.curves`: learning curves of training runs (``learning_curve``, ``data_mean_return``);
- :mod:`.model_diagnostics`: the tables and figures of ``dynlearn model train`` / ``model eval``;
- :mod:`.dsr_figures`: the figures of ``dynlearn dsr fit`` / ``dsr eval``.

Figures use matplotlib's Agg backend, chosen on the first figure (:mod:`._pyplot`).
"""

from .curves import data_mean_return, learning_curve

__all__ = ["data_mean_return", "learning_curve"]
