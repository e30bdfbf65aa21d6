"""Echo-state network (reservoir computing) baseline, free-running in closed loop as a latent model.

Jaeger, "The 'echo state' approach to analysing and training recurrent neural networks", GMD Report 148 (2001);
as used for chaotic attractors by Pathak, Lu, Hunt, Girvan & Ott, "Using machine learning to replicate chaotic
attractors and calculate Lyapunov exponents from data", Chaos 27, 121102 (2017), arXiv 1710.07313, and Pathak et al.,
PRL 120, 024102 (2018). A fixed random recurrent network (the reservoir) is driven by the data; only a linear readout
is trained, by ridge regression in closed form; for prediction the readout is fed back as the next input.

Reservoir update (leaky-integrator units, Jaeger et al. 2007), state ``r`` of ``reservoir_size`` (M) units:

    r_{t+1} = (1 - a) r_t + a tanh(W r_t + W_in x_t + b),         x_hat_t = W_out g(r_t),

``W``: sparse (about ``degree`` nonzeros per row, uniform in [-1, 1]) rescaled to ``spectral_radius``;
``W_in``: one nonzero per row (each unit hears one input channel, uniform in +-``input_scaling``, as Pathak et al.);
``b``: uniform in +-``bias_scaling``; ``a``: ``leak_rate``. ``g(r) = (1, r, r_even^2)``: with ``squared_features`` the
even-indexed units are squared (Pathak et al. 2017, their r-tilde), which breaks the reservoir's odd symmetry
``r -> -r`` that the Lorenz equations do not have.

**Training** (teacher forcing): drive the reservoir with the data from ``r_0 = 0``; drop ``washout`` states; solve
``(G^T G / T + ridge I) W_out^T = G^T X / T`` over the remaining states (``G``: rows ``g(r_t)``, ``X``: rows ``x_t``;
the Gram matrix is normalised by the number of samples so ``ridge`` does not depend on the series length), with
``jnp.linalg.solve`` in float64 (the Gram matrix is badly conditioned). ``r_t`` has seen ``x_0 .. x_{t-1}``, so
``x_hat_t`` is a one-step-ahead prediction.

**Closed loop** (the latent map): ``step(r) = (1 - a) r + a tanh(W r + W_in W_out g(r) + b)``; ``observe = W_out g``.

**Warm-up (``encode``).** A reservoir state is not a function of one observation: it depends on the input history.
Two ways in:

- :meth:`ESN.warm_up` ``(window [W, N])``: teacher-forced washout on real data (from ``r = 0``, driven by
  ``window[:-1]``), returning the state whose readout predicts ``window[-1]``. :meth:`ESN.generate` accepts such a
  window as ``x0`` (``[W, N]``): the run then starts at ``window[-1]``. This is the faithful way, used in the papers.
- :meth:`ESN.encode` ``(x [N])`` (the interface's single observation): the stored reservoir state of the nearest of
  ``anchors`` training points (Euclidean distance in observation space). Its history is that of a nearby orbit, so
  the run starts on the attractor near ``x`` (exactly at ``x`` only when ``x`` is a training point). Use it where
  only one observation is available (e.g. :func:`dynlearn.metrics.dsr.prediction_error`); prefer a window otherwise.
  The anchors are not part of the map and are not counted in :attr:`ESN.n_params`.

>>> model, report = fit_esn(series, ESNConfig(reservoir_size=400), key=jax.random.key(0))
>>> x_gen = model.generate(10_000, x0=x_test[:500])      # warm up on 500 test points, then free-run
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, ArrayLike, Float, Key
from ..data.timeseries import TimeSeries
from ..errors import ConfigError, DataError
from .base import AbstractLatentModel


@dataclasses.dataclass(frozen=True)
class ESNConfig:
    """How :func:`fit_esn` builds the reservoir and fits the readout."""

    reservoir_size: int = 400
    """Reservoir units M (the latent dimension)."""
    degree: float = 6.0
    """Average nonzeros per row of the reservoir matrix W (sparse Erdos-Renyi graph)."""
    spectral_radius: float = 0.9
    """Largest |eigenvalue| of W after rescaling (memory; a small radius damps the reservoir's own dynamics)."""
    input_scaling: float = 0.5
    """W_in entries are uniform in +-input_scaling (one input channel per unit)."""
    bias_scaling: float = 0.5
    """Bias entries are uniform in +-bias_scaling."""
    leak_rate: float = 1.0
    """a in (0, 1]: leaky-integrator rate (1: no leak)."""
    ridge: float = 1e-7
    """Ridge weight on the per-sample normalised normal equations of the readout."""
    washout: int = 200
    """Initial teacher-forced states dropped from the regression (and from each trajectory)."""
    squared_features: bool = True
    """Readout on (1, r, r_even^2) (Pathak et al. 2017) instead of (1, r)."""
    anchors: int = 2000
    """Training points whose reservoir states :meth:`ESN.encode` keeps for nearest-neighbour warm starts."""
    seed: int = 0
    """Seed when fit_esn gets no key."""

    def __post_init__(self):
        bad = []
        for name in ("reservoir_size", "anchors"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                bad.append(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.washout, int) and self.washout >= 0):
            bad.append(f"washout must be an integer >= 0, got {self.washout!r}")
        for name in ("degree", "spectral_radius", "input_scaling"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                bad.append(f"{name} must be finite and > 0, got {value!r}")
        for name in ("bias_scaling", "ridge"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                bad.append(f"{name} must be finite and >= 0, got {value!r}")
        if not (isinstance(self.leak_rate, (int, float)) and 0 < self.leak_rate <= 1):
            bad.append(f"leak_rate must be in (0, 1], got {self.leak_rate!r}")
        if isinstance(self.degree, (int, float)) and isinstance(self.reservoir_size, int) and self.degree > self.reservoir_size:
            bad.append(f"degree {self.degree} exceeds reservoir_size {self.reservoir_size}")
        if bad:
            raise ConfigError("ESNConfig: " + "; ".join(bad) + ".")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ESNReport:
    """What :func:`fit_esn` did."""

    train_mse: float
    """One-step (teacher-forced) readout MSE on the regression samples (float64 readout, before rounding to float32)."""
    n_samples: int
    """Reservoir states in the regression (after washout)."""
    n_params: int
    """Numbers defining the closed-loop map (see :attr:`ESN.n_params`)."""
    n_trained_params: int
    """Readout entries (the only trained parameters)."""
    wall_s: float
    config: ESNConfig


class ESN(AbstractLatentModel):
    """An echo-state network in closed loop: latent = reservoir state, ``observe`` = the readout (module docstring)."""

    W: Float[Array, "latent latent"]
    W_in: Float[Array, "latent obs"]
    b: Float[Array, " latent"]
    W_out: Float[Array, "obs features"]
    anchor_x: Float[Array, "anchors obs"]
    anchor_r: Float[Array, "anchors latent"]
    obs_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    leak_rate: float = eqx.field(static=True)
    squared_features: bool = eqx.field(static=True)

    # ----- the reservoir -----------------------------------------------------------------------------
    def features(self, r: Float[Array, " latent"]) -> Float[Array, " features"]:
        """``g(r) = (1, r, r_even^2)`` (or ``(1, r)``)."""
        parts = [jnp.ones((1,), r.dtype), r]
        if self.squared_features:
            parts.append(jnp.square(r[::2]))
        return jnp.concatenate(parts)

    def drive(self, r: Float[Array, " latent"], x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        """One reservoir update driven by the input ``x`` (teacher forcing)."""
        pre = self.W @ r + self.W_in @ x + self.b
        return (1.0 - self.leak_rate) * r + self.leak_rate * jnp.tanh(pre)

    def observe(self, z: Float[Array, " latent"]) -> Float[Array, " obs"]:
        """The readout ``W_out g(r)``: the prediction of the observation at this state's time."""
        return self.W_out @ self.features(z)

    def step(self, z: Float[Array, " latent"], *, forcing: Float[Array, " latent"] | None = None) -> Float[Array, " latent"]:
        """Closed loop: the reservoir driven by its own readout (``+ forcing`` on the new state)."""
        z = self.drive(z, self.observe(z))
        return z if forcing is None else z + forcing

    # ----- entering the reservoir ----------------------------------------------------------------------
    def encode(self, x: Float[Array, " obs"]) -> Float[Array, " latent"]:
        """The stored reservoir state of the nearest anchor (training point) to ``x``; see the module docstring."""
        d2 = jnp.sum(jnp.square(self.anchor_x - jnp.asarray(x, self.anchor_x.dtype)), axis=-1)
        return self.anchor_r[jnp.argmin(d2)]

    def warm_up(self, window: Float[Array, "window obs"]) -> Float[Array, " latent"]:
        """Teacher-forced washout from ``r = 0`` on ``window[:-1]``: the state whose readout predicts ``window[-1]``."""
        window = jnp.asarray(window, jnp.float32)
        if window.ndim != 2 or window.shape[1] != self.obs_dim or window.shape[0] < 1:
            raise ConfigError(f"ESN.warm_up: window has shape {window.shape}; expected [W, {self.obs_dim}] with W >= 1.")
        r0 = jnp.zeros((self.latent_dim,), jnp.float32)
        return jax.lax.scan(lambda r, x: (self.drive(r, x), None), r0, window[:-1])[0]

    def generate(self, steps: int, *, x0: Float[Array, "... obs"] | None = None, z0: Float[Array, " latent"] | None = None,
                 latent: bool = False, forcing: Float[Array, "steps_minus_1 latent"] | None = None):
        """As :meth:`AbstractLatentModel.generate`; ``x0`` may also be a warm-up window ``[W, N]`` (see :meth:`warm_up`):
        the run then starts from the warmed-up state and its first output predicts ``x0[-1]``."""
        if x0 is not None and np.ndim(x0) == 2:
            if z0 is not None:
                raise ConfigError("generate: pass exactly one start, x0 (an observation or a warm-up window) or z0.")
            return super().generate(steps, z0=self.warm_up(x0), latent=latent, forcing=forcing)
        return super().generate(steps, x0=x0, z0=z0, latent=latent, forcing=forcing)

    # ----- counts ------------------------------------------------------------------------------------
    @property
    def n_trained_params(self) -> int:
        """Readout entries (trained by ridge regression)."""
        return int(self.W_out.size)

    @property
    def n_params(self) -> int:
        """Numbers that define the closed-loop map: nonzeros of W, W_in and b (fixed, random) plus the readout.
        (The anchors of :meth:`encode` are not counted.) :attr:`n_trained_params` counts the readout alone."""
        fixed = sum(int(np.count_nonzero(np.asarray(a))) for a in (self.W, self.W_in, self.b))
        return fixed + self.n_trained_params

    def header(self) -> dict:
        """Kind and sizes (for saving)."""
        return {"model": "esn", "obs_dim": self.obs_dim, "latent_dim": self.latent_dim, "leak_rate": self.leak_rate,
                "squared_features": self.squared_features, "anchors": int(self.anchor_x.shape[0])}


# ----- building and fitting -------------------------------------------------------------------------------
def random_reservoir(n: int, m: int, cfg: ESNConfig, *, key: Key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W [M, M], W_in [M, N], b [M])`` as the module docstring describes (float32; W's spectral radius exact)."""
    k_mask, k_w, k_chan, k_in, k_b = jax.random.split(key, 5)
    p = min(1.0, cfg.degree / m)
    mask = np.asarray(jax.random.bernoulli(k_mask, p, (m, m)))
    w = np.where(mask, np.asarray(jax.random.uniform(k_w, (m, m), jnp.float32, -1.0, 1.0), np.float64), 0.0)
    radius = float(np.max(np.abs(np.linalg.eigvals(w)))) if mask.any() else 0.0
    if radius < 1e-12:
        raise ConfigError(f"ESNConfig: the random reservoir (M={m}, degree={cfg.degree}) has spectral radius 0 (nilpotent); "
                          "raise degree or change the seed.")
    w *= cfg.spectral_radius / radius
    channel = np.asarray(jax.random.randint(k_chan, (m,), 0, n))
    w_in = np.zeros((m, n), np.float64)
    w_in[np.arange(m), channel] = np.asarray(jax.random.uniform(k_in, (m,), jnp.float32, -cfg.input_scaling, cfg.input_scaling))
    b = np.asarray(jax.random.uniform(k_b, (m,), jnp.float32, -1.0, 1.0), np.float64) * cfg.bias_scaling
    return w.astype(np.float32), w_in.astype(np.float32), b.astype(np.float32)


def _as_arrays(series: TimeSeries | ArrayLike | Sequence[ArrayLike], where: str) -> list[np.ndarray]:
    if isinstance(series, TimeSeries):
        return [np.asarray(v, np.float32) for v in series.values]
    items = list(series) if isinstance(series, (list, tuple)) else [series]
    if not items:
        raise DataError(where, "got an empty list of trajectories.", "pass one array [T, N] or a list of them.")
    arrays = []
    for i, item in enumerate(items):
        source = where if len(items) == 1 else f"{where}[{i}]"
        try:
            a = np.asarray(item, np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(source, f"is not a numeric array ({e}).", "pass a float array [T, N].") from None
        if a.ndim != 2 or a.shape[1] < 1:
            raise DataError(source, f"has shape {a.shape}; expected [T, N].", "pass time along axis 0 (x[:, None] for one channel).")
        if not np.all(np.isfinite(a)):
            raise DataError(source, "holds NaN/inf.", "remove or interpolate those samples first.")
        if arrays and a.shape[1] != arrays[0].shape[1]:
            raise DataError(source, f"has {a.shape[1]} channels, the first trajectory {arrays[0].shape[1]}.",
                            "pass trajectories of one system.")
        arrays.append(a)
    return arrays


@eqx.filter_jit
def _teacher_forced_states(model: ESN, x: Float[Array, "T obs"]) -> Float[Array, "T latent"]:
    """``r_t`` for t = 0..T-1 from ``r_0 = 0`` driven by ``x_0 .. x_{T-2}`` (``r_t`` has seen ``x_{<t}``)."""

    def body(r, xt):
        r_next = model.drive(r, xt)
        return r_next, r

    return jax.lax.scan(body, jnp.zeros((model.latent_dim,), jnp.float32), x)[1]


@eqx.filter_jit
def _normal_equations(model: ESN, states: Float[Array, "T latent"], targets: Float[Array, "T obs"], chunk: int, dtype):
    """``(G^T G, G^T X)`` in ``dtype``, accumulated over chunks of rows (bounded memory for long series)."""
    n_rows = states.shape[0]
    chunk = min(chunk, n_rows)
    n_chunks = n_rows // chunk
    feat = jax.vmap(model.features)

    def sums(r, x):
        g = feat(r.astype(dtype))
        return g.T @ g, g.T @ x.astype(dtype)

    def add(carry, idx):
        g2, gx = sums(jax.lax.dynamic_slice_in_dim(states, idx * chunk, chunk), jax.lax.dynamic_slice_in_dim(targets, idx * chunk, chunk))
        return (carry[0] + g2, carry[1] + gx), None

    f = feat(states[:1]).shape[1]
    init = (jnp.zeros((f, f), dtype), jnp.zeros((f, targets.shape[1]), dtype))
    gram, cross = jax.lax.scan(add, init, jnp.arange(n_chunks))[0]
    g2, gx = sums(states[n_chunks * chunk:], targets[n_chunks * chunk:])
    return gram + g2, cross + gx


def fit_esn(series: TimeSeries | ArrayLike | Sequence[ArrayLike], cfg: ESNConfig = ESNConfig(), *, key: Key | None = None
            ) -> tuple[ESN, ESNReport]:
    """Build a random reservoir and fit its readout by ridge regression; returns ``(model, report)``.

    ``series``: a :class:`~dynlearn.data.timeseries.TimeSeries`, an array ``[T, N]`` or a list of them (each trajectory
    is driven from ``r = 0`` and loses its first ``washout`` states); standardise first. ``key``: the reservoir and
    anchor draws (default ``jax.random.key(cfg.seed)``). The sampling interval plays no role (a discrete map).
    """
    start = time.perf_counter()
    if not isinstance(cfg, ESNConfig):
        raise ConfigError(f"fit_esn: cfg must be an ESNConfig, got {type(cfg).__name__}.")
    arrays = _as_arrays(series, "fit_esn")
    short = [len(a) for a in arrays if len(a) < cfg.washout + 2]
    if short:
        raise DataError("fit_esn", f"a trajectory has {short[0]} samples; washout {cfg.washout} leaves fewer than 2.",
                        "pass longer trajectories or a smaller ESNConfig.washout.")
    n, m = arrays[0].shape[1], cfg.reservoir_size
    key = jax.random.key(cfg.seed) if key is None else key
    res_key, anchor_key = jax.random.split(key)
    w, w_in, b = random_reservoir(n, m, cfg, key=res_key)
    n_feat = 1 + m + (len(range(0, m, 2)) if cfg.squared_features else 0)
    model = ESN(W=jnp.asarray(w), W_in=jnp.asarray(w_in), b=jnp.asarray(b), W_out=jnp.zeros((n, n_feat), jnp.float32),
                anchor_x=jnp.zeros((1, n), jnp.float32), anchor_r=jnp.zeros((1, m), jnp.float32), obs_dim=n, latent_dim=m,
                leak_rate=float(cfg.leak_rate), squared_features=bool(cfg.squared_features))

    kept_states, kept_x = [], []
    for a in arrays:
        x = jnp.asarray(a)
        kept_states.append(_teacher_forced_states(model, x)[cfg.washout:])
        kept_x.append(x[cfg.washout:])
    n_samples = sum(int(s.shape[0]) for s in kept_states)
    # The Gram matrix of reservoir features is badly conditioned (1e8 and worse): accumulate and solve in float64.
    with jax.enable_x64(True):
        gram = jnp.zeros((n_feat, n_feat), jnp.float64)
        cross = jnp.zeros((n_feat, n), jnp.float64)
        for states, targets in zip(kept_states, kept_x):
            g_k, c_k = _normal_equations(model, states, targets, 4096, jnp.float64)
            gram, cross = gram + g_k, cross + c_k
        lhs = gram / n_samples + cfg.ridge * jnp.eye(n_feat, dtype=jnp.float64)
        w64 = jnp.linalg.solve(lhs, cross / n_samples)  # [features, obs]
        # training MSE from the same sums: |X|^2 - 2 tr(W^T G^T X) + tr(W^T G^T G W), per sample and channel
        sq = sum(float(jnp.sum(jnp.square(t.astype(jnp.float64)))) for t in kept_x)
        train_mse = (sq - 2.0 * float(jnp.sum(w64 * cross)) + float(jnp.sum(w64 * (gram @ w64)))) / (n_samples * n)
        w_out = w64.T.astype(jnp.float32)
    if not bool(jnp.all(jnp.isfinite(w_out))):
        raise DataError("fit_esn", "the ridge regression gave non-finite readout weights.",
                        "raise ESNConfig.ridge, or standardise the data.")

    all_states = kept_states[0] if len(kept_states) == 1 else jnp.concatenate(kept_states)
    all_x = kept_x[0] if len(kept_x) == 1 else jnp.concatenate(kept_x)
    pick = jax.random.choice(anchor_key, all_states.shape[0], (min(cfg.anchors, all_states.shape[0]),), replace=False)
    model = eqx.tree_at(lambda mdl: (mdl.W_out, mdl.anchor_x, mdl.anchor_r), model, (w_out, all_x[pick], all_states[pick]))
    train_mse = max(train_mse, 0.0)  # rounding can push an exact fit below zero
    report = ESNReport(train_mse=train_mse, n_samples=n_samples, n_params=model.n_params, n_trained_params=model.n_trained_params,
                       wall_s=time.perf_counter() - start, config=cfg)
    return model, report
