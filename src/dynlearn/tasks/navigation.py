"""A 2-D navigation task with local perception: a unicycle robot, random obstacle maps, a goal, collision = failure.

The task of the failure-head experiment (:mod:`dynlearn.models.failure`, :mod:`dynlearn.planning.failure_cost`), in the
spirit of Kim et al. 2022 ("Learning Forward Dynamics Model and Informed Trajectory Sampler for Safe Quadruped
Navigation", RSS, arXiv 2204.08647), whose local planner sees a robot-centric occupancy map: everything here is pure
JAX (jittable, ``vmap`` over scenes).

- **World** (:class:`Scene`): a square arena of ``size`` units (outside it is wall) rasterised at ``cell`` units into an
  occupancy grid; ``discs`` circular obstacles of radius in ``radius_range`` between a start on the left and a goal on
  the right (obstacles that would touch the start or the goal, or come within ``gap`` of another, are dropped).
  :func:`reachable` says whether the goal can be reached by a disc of the robot's radius (a flood fill over the free
  cells): :func:`scenes` keeps the solvable ones for evaluation.
- **Robot**: a disc of ``robot_radius``; state pose ``(x, y, heading)`` and velocities ``(v, omega)``. An action in
  ``[-1, 1]^2`` commands ``(v, omega)`` in units of ``max_speed`` / ``max_turn``; the velocities close a fraction
  ``lag`` of the gap to the command per step, turning costs forward speed (``slip``) and pushes the robot sideways
  (``drift``). The exact step is :func:`body_motion` then :func:`compose`.
- **Failure**: the disc overlaps an occupied cell or leaves the arena, checked at the step's end and midpoint
  (:func:`collides`). An episode ends at failure, at the goal (centre within ``goal_radius``) or at ``time_limit``.
- **Observation** (:func:`observe`): the goal in the robot's frame (2), the velocities (2), and a robot-centric
  occupancy grid of ``view x view`` cells at ``view_cell`` spacing, axes along the heading (nearest world cell; outside
  the arena reads occupied). The robot perceives nothing farther than half the view.

:func:`sample_grid` reads a grid at arbitrary continuous points (bilinear): the learned model's local patch at a pose is
cut from the observation's grid with it (:func:`local_patch`).
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Bool, Float, Key
from ..errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NavigationConfig:
    size: float = 16.0
    """Side of the square arena (units); outside it is wall."""
    cell: float = 0.25
    """World grid resolution (units per cell)."""
    discs: int = 14
    """Circular obstacles drawn per map (fewer remain: those touching the start, the goal or another are dropped)."""
    radius_range: tuple[float, float] = (0.5, 1.4)
    """Obstacle radii, drawn uniformly."""
    gap: float = 1.2
    """Least free space between two obstacles (a disc drawn closer to an earlier one is dropped)."""
    robot_radius: float = 0.3
    """Radius of the robot's disc."""
    dt: float = 0.2
    """Seconds per step."""
    max_speed: float = 1.5
    """Forward speed commanded by action 1 (units/s; action -1 reverses at the same speed)."""
    max_turn: float = 2.0
    """Turn rate commanded by action 1 (rad/s)."""
    lag: float = 0.5
    """Fraction of the gap between velocity and command closed per step."""
    slip: float = 0.3
    """Forward speed lost at full turn rate (fraction)."""
    drift: float = 0.15
    """Sideways motion per unit of speed times turn rate (units per unit/s x rad/s x s)."""
    goal_radius: float = 0.5
    """The goal is reached when the centre is this close."""
    time_limit: int = 80
    """Steps per episode."""
    view: int = 41
    """Cells per side of the robot-centric occupancy grid (odd: the robot is at its centre cell)."""
    view_cell: float = 0.25
    """Spacing of the robot-centric grid (units)."""

    def __post_init__(self):
        if self.view % 2 == 0 or self.view < 3:
            raise ConfigError(f"NavigationConfig.view must be odd and >= 3, got {self.view}. Fix: pass an odd view (41).")
        lo, hi = self.radius_range
        if not 0 < lo <= hi or self.size <= 6 or self.cell <= 0 or self.robot_radius <= 0 or self.dt <= 0:
            raise ConfigError("NavigationConfig: need 0 < radius_range[0] <= radius_range[1], size > 6, and positive cell, "
                              "robot_radius and dt. Fix: keep the defaults or change them within those limits.")
        if not 0 < self.lag <= 1 or self.time_limit < 1 or self.discs < 0:
            raise ConfigError(f"NavigationConfig: need 0 < lag <= 1 (got {self.lag}), time_limit >= 1, discs >= 0.")

    @property
    def cells(self) -> int:
        return int(round(self.size / self.cell))

    @property
    def obs_dim(self) -> int:
        return 4 + self.view * self.view

    @property
    def step_length(self) -> float:
        """The most the robot moves in one step (units)."""
        return self.max_speed * self.dt * (1 + self.drift * self.max_turn)


class Scene(eqx.Module):
    """One map: the occupancy grid ``occ[i, j]`` (cell ``i`` along x, ``j`` along y), start pose and goal."""

    occ: Float[Array, "g g"]
    start: Float[Array, "3"]
    goal: Float[Array, "2"]


class NavState(eqx.Module):
    """The robot: pose ``(x, y, heading)`` in the world and velocities ``(v, omega)``."""

    pose: Float[Array, "3"]
    vel: Float[Array, "2"]


# ----------------------------------------------------------------------------------------------------------- maps


def generate(cfg: NavigationConfig, key: Key) -> Scene:
    """A random scene (jittable; ``vmap`` over keys for many); :func:`reachable` says whether it can be solved."""
    start_key, goal_key, head_key, centre_key, radius_key = jax.random.split(key, 5)
    s = cfg.size
    start_xy = jax.random.uniform(start_key, (2,), minval=jnp.array([1.0, 1.5]), maxval=jnp.array([2.5, s - 1.5]))
    goal = jax.random.uniform(goal_key, (2,), minval=jnp.array([s - 2.5, 1.5]), maxval=jnp.array([s - 1.0, s - 1.5]))
    to_goal = jnp.arctan2(goal[1] - start_xy[1], goal[0] - start_xy[0])
    heading = to_goal + jax.random.uniform(head_key, (), minval=-jnp.pi / 2, maxval=jnp.pi / 2)
    centres = jax.random.uniform(centre_key, (cfg.discs, 2), minval=jnp.array([3.5, 0.5]), maxval=jnp.array([s - 3.5, s - 0.5]))
    radii = jax.random.uniform(radius_key, (cfg.discs,), minval=cfg.radius_range[0], maxval=cfg.radius_range[1])
    clear = cfg.robot_radius + 0.5
    touches = lambda p: jnp.linalg.norm(centres - p, axis=-1) < radii + clear  # noqa: E731
    radii = jnp.where(touches(start_xy) | touches(goal), 0.0, radii)

    def keep(kept, k):  # a disc closer than `gap` to an earlier kept one is dropped: obstacles stay apart and convex
        near = jnp.linalg.norm(centres - centres[k], axis=-1) < radii + radii[k] + cfg.gap
        ok = (radii[k] > 0) & ~jnp.any(near & kept & (jnp.arange(cfg.discs) < k))
        return kept.at[k].set(ok), None

    kept, _ = jax.lax.scan(keep, jnp.zeros(cfg.discs, bool), jnp.arange(cfg.discs))
    radii = jnp.where(kept, radii, 0.0)
    centers = (jnp.arange(cfg.cells, dtype=jnp.float32) + 0.5) * cfg.cell
    xy = jnp.stack(jnp.meshgrid(centers, centers, indexing="ij"), axis=-1)                  # [g, g, 2]
    dist = jnp.linalg.norm(xy[:, :, None, :] - centres, axis=-1) - radii                    # [g, g, discs]
    occ = jnp.any((dist < 0) & (radii > 0), axis=-1).astype(jnp.float32)
    return Scene(occ=occ, start=jnp.concatenate([start_xy, heading[None]]), goal=goal)


def reachable(cfg: NavigationConfig, scene: Scene) -> Bool[Array, ""]:
    """Whether the goal is reachable: a flood fill from the start over the cells a robot centre may occupy (no occupied
    cell within its radius, inside the arena)."""
    occ, start_xy, goal, g = scene.occ, scene.start[:2], scene.goal, cfg.cells
    reach = int(np.ceil(cfg.robot_radius / cfg.cell))
    offsets = [(di, dj) for di in range(-reach, reach + 1) for dj in range(-reach, reach + 1)
               if max(0.0, (abs(di) - 0.5) * cfg.cell) ** 2 + max(0.0, (abs(dj) - 0.5) * cfg.cell) ** 2 < cfg.robot_radius ** 2]
    padded = jnp.pad(occ, reach, constant_values=1.0)
    blocked = jnp.zeros_like(occ, dtype=bool)
    for di, dj in offsets:
        blocked = blocked | (padded[reach + di: reach + di + g, reach + dj: reach + dj + g] > 0)
    free = ~blocked
    cell_of = lambda p: jnp.clip(jnp.floor(p / cfg.cell).astype(jnp.int32), 0, g - 1)  # noqa: E731
    si, gi = cell_of(start_xy), cell_of(goal)
    filled = jnp.zeros_like(free).at[si[0], si[1]].set(True) & free

    def grow(_, f):
        p = jnp.pad(f, 1)
        return (f | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]) & free

    filled = jax.lax.fori_loop(0, 4 * g, grow, filled)
    return filled[gi[0], gi[1]]


def scenes(cfg: NavigationConfig, count: int, *, key: Key, solvable: bool = True) -> Scene:
    """``count`` scenes stacked (leading axis), drawn from ``key``; with ``solvable`` only those whose goal is
    reachable (drawn in rounds until there are enough)."""
    if count < 1:
        raise ConfigError(f"scenes: count must be >= 1, got {count}.")
    kept, have, round_ = [], 0, 0
    while have < count:
        batch, ok = _draw(cfg, solvable, jax.random.split(jax.random.fold_in(key, round_), 2 * count))
        rows = np.flatnonzero(np.asarray(ok))
        kept.append(jax.tree_util.tree_map(lambda x, rows=rows: x[rows], batch))
        have, round_ = have + rows.size, round_ + 1
        if round_ > 50:
            raise ConfigError("scenes: almost no generated map is solvable. Fix: fewer discs or a smaller radius_range.")
    return jax.tree_util.tree_map(lambda *x: jnp.concatenate(x)[:count], *kept)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(cfg: NavigationConfig, solvable: bool, keys):
    def one(k):
        scene = generate(cfg, k)
        return scene, reachable(cfg, scene) if solvable else jnp.bool_(True)

    return jax.vmap(one)(keys)


# ----------------------------------------------------------------------------------------------------------- dynamics


def commands(cfg: NavigationConfig, act: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
    """Commanded ``(v, omega)`` of an action in ``[-1, 1]^2`` (clipped)."""
    act = jnp.clip(act, -1.0, 1.0)
    return act * jnp.array([cfg.max_speed, cfg.max_turn], jnp.float32)


def body_motion(cfg: NavigationConfig, vel: Float[Array, "... 2"], act: Float[Array, "... 2"]):
    """The exact step in the robot's frame: ``(delta (dx, dy, dheading) [..., 3], next velocities [..., 2])``."""
    vel = vel + cfg.lag * (commands(cfg, act) - vel)
    v, w = vel[..., 0], vel[..., 1]
    forward = v * (1 - cfg.slip * jnp.abs(w) / cfg.max_turn) * cfg.dt
    side = cfg.drift * v * w * cfg.dt
    half = 0.5 * w * cfg.dt
    dx = forward * jnp.cos(half) - side * jnp.sin(half)
    dy = forward * jnp.sin(half) + side * jnp.cos(half)
    return jnp.stack([dx, dy, w * cfg.dt], axis=-1), vel


def compose(pose: Float[Array, "... 3"], delta: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
    """``pose`` moved by ``delta`` given in its own frame; the heading wrapped to ``[-pi, pi)``."""
    c, s = jnp.cos(pose[..., 2]), jnp.sin(pose[..., 2])
    x = pose[..., 0] + c * delta[..., 0] - s * delta[..., 1]
    y = pose[..., 1] + s * delta[..., 0] + c * delta[..., 1]
    h = jnp.mod(pose[..., 2] + delta[..., 2] + jnp.pi, 2 * jnp.pi) - jnp.pi
    return jnp.stack([x, y, h], axis=-1)


def _disc_hits(cfg: NavigationConfig, occ, xy: Float[Array, "... 2"]) -> Bool[Array, "..."]:
    """The disc at ``xy`` overlaps an occupied cell or the outside of the arena."""
    g, reach = cfg.cells, int(np.ceil(cfg.robot_radius / cfg.cell)) + 1
    base = jnp.floor(xy / cfg.cell).astype(jnp.int32)
    d = jnp.arange(-reach, reach + 1, dtype=jnp.int32)
    ii = base[..., 0, None, None] + d[:, None]
    jj = base[..., 1, None, None] + d[None, :]
    inside = (ii >= 0) & (ii < g) & (jj >= 0) & (jj < g)
    cell_occ = jnp.where(inside, occ[jnp.clip(ii, 0, g - 1), jnp.clip(jj, 0, g - 1)], 1.0)
    lo_x, lo_y = ii.astype(jnp.float32) * cfg.cell, jj.astype(jnp.float32) * cfg.cell
    near_x = jnp.clip(xy[..., 0, None, None], lo_x, lo_x + cfg.cell) - xy[..., 0, None, None]
    near_y = jnp.clip(xy[..., 1, None, None], lo_y, lo_y + cfg.cell) - xy[..., 1, None, None]
    touch = near_x**2 + near_y**2 < cfg.robot_radius**2
    return jnp.any((cell_occ > 0) & touch, axis=(-2, -1))


def collides(cfg: NavigationConfig, occ: Float[Array, "g g"], pose: Float[Array, "... 3"], next_pose: Float[Array, "... 3"]):
    """The robot's disc hits an obstacle or the arena's edge at the step's midpoint or end."""
    mid = 0.5 * (pose[..., :2] + next_pose[..., :2])
    return _disc_hits(cfg, occ, mid) | _disc_hits(cfg, occ, next_pose[..., :2])


def step(cfg: NavigationConfig, scene: Scene, state: NavState, act: Float[Array, "2"]):
    """One exact step: ``(next state, failed, reached the goal)``. A failed step's state is where the robot hit."""
    delta, vel = body_motion(cfg, state.vel, act)
    pose = compose(state.pose, delta)
    failed = collides(cfg, scene.occ, state.pose, pose)
    reached = jnp.linalg.norm(pose[:2] - scene.goal) < cfg.goal_radius
    return NavState(pose=pose, vel=vel), failed, reached & ~failed


def reset(scene: Scene) -> NavState:
    return NavState(pose=scene.start, vel=jnp.zeros(2, jnp.float32))


# ----------------------------------------------------------------------------------------------------------- perception


def sample_grid(grid: Float[Array, "m m"], points: Float[Array, "... 2"], spacing: float, *, outside: float) -> Float[Array, "..."]:
    """Bilinear read of a centred grid (cell ``(i, j)`` at ``((i - c) * spacing, (j - c) * spacing)``, ``c = (m-1)/2``) at
    ``points``; ``outside`` beyond its edge."""
    m = grid.shape[0]
    u = points / spacing + (m - 1) / 2
    floor = jnp.floor(u)
    i0, f = floor.astype(jnp.int32), u - floor
    padded = jnp.pad(grid, 1, constant_values=outside)
    read = lambda di, dj: padded[jnp.clip(i0[..., 0] + di + 1, 0, m + 1), jnp.clip(i0[..., 1] + dj + 1, 0, m + 1)]  # noqa: E731
    fx, fy = f[..., 0], f[..., 1]
    return ((1 - fx) * (1 - fy) * read(0, 0) + fx * (1 - fy) * read(1, 0) + (1 - fx) * fy * read(0, 1) + fx * fy * read(1, 1))


def grid_offsets(cells: int, spacing: float) -> Float[Array, "n n 2"]:
    """Points of a centred ``cells x cells`` grid at ``spacing`` (first axis along the frame's x)."""
    c = (jnp.arange(cells, dtype=jnp.float32) - (cells - 1) / 2) * spacing
    return jnp.stack(jnp.meshgrid(c, c, indexing="ij"), axis=-1)


def in_frame(pose: Float[Array, "... 3"], points: Float[Array, "n n 2"]) -> Float[Array, "... n n 2"]:
    """``points`` given in the frame of ``pose``, expressed in the frame ``pose`` is given in."""
    c, s = jnp.cos(pose[..., 2])[..., None, None], jnp.sin(pose[..., 2])[..., None, None]
    x = pose[..., 0, None, None] + c * points[..., 0] - s * points[..., 1]
    y = pose[..., 1, None, None] + s * points[..., 0] + c * points[..., 1]
    return jnp.stack([x, y], axis=-1)


def ego_grid(cfg: NavigationConfig, scene: Scene, pose: Float[Array, "3"]) -> Float[Array, "v v"]:
    """The robot-centric occupancy grid (nearest world cell; outside the arena is occupied)."""
    pts = in_frame(pose, grid_offsets(cfg.view, cfg.view_cell))
    g = cfg.cells
    idx = jnp.floor(pts / cfg.cell).astype(jnp.int32)
    inside = jnp.all((idx >= 0) & (idx < g), axis=-1)
    return jnp.where(inside, scene.occ[jnp.clip(idx[..., 0], 0, g - 1), jnp.clip(idx[..., 1], 0, g - 1)], 1.0)


def observe(cfg: NavigationConfig, scene: Scene, state: NavState) -> Float[Array, " obs"]:
    """``[goal in the robot's frame (2), velocities (2), robot-centric grid (view * view)]``."""
    c, s = jnp.cos(state.pose[2]), jnp.sin(state.pose[2])
    d = scene.goal - state.pose[:2]
    goal = jnp.stack([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
    return jnp.concatenate([goal, state.vel, ego_grid(cfg, scene, state.pose).reshape(-1)]).astype(jnp.float32)


def split_obs(cfg: NavigationConfig, obs: Float[Array, "... obs"]):
    """``(goal [..., 2], velocities [..., 2], grid [..., view, view])`` of observations."""
    if obs.shape[-1] != cfg.obs_dim:
        raise ConfigError(f"navigation observations have {cfg.obs_dim} values (4 + view^2), got {obs.shape[-1]}. "
                          "Fix: observe with the same NavigationConfig.")
    return obs[..., :2], obs[..., 2:4], obs[..., 4:].reshape(*obs.shape[:-1], cfg.view, cfg.view)


def local_patch(cfg: NavigationConfig, grid: Float[Array, "v v"], pose: Float[Array, "... 3"], cells: int,
                spacing: float) -> Float[Array, "... n n"]:
    """The ``cells x cells`` patch at ``spacing`` around ``pose`` (given in the grid's frame, axes along its heading),
    read bilinearly from a robot-centric grid; beyond the grid reads free (not perceived)."""
    return sample_grid(grid, in_frame(pose, grid_offsets(cells, spacing)), cfg.view_cell, outside=0.0)
