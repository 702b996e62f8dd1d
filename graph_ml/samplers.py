"""Samplers and pruners of `graph_ml.tune`, and the trials a seeded sampler will draw.

- `SAMPLERS`: TPE (default, multivariate), random, grid, CMA-ES; `PRUNERS`: median,
  hyperband, none. Each is a factory of the Optuna object (a sampler from the space and a
  seed, a pruner from the epochs per trial).
- `planned_draws(space, sampler, seed, n)`: the configurations the sampler draws, with that
  seed, before any result can steer it (TPE's random start-up trials; every trial of the
  random and grid samplers), replayed in an in-memory study. The router's estimate of a
  tune prices these trials one by one.

No torch here: the router imports it to estimate a plan before any training starts.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import optuna

from core.errors import SetupError, UserInputError
from core.registry import Registry
from graph_ml.search_space import FloatRange, IntRange, Param, Space, Value, grid_values, suggest

DEFAULT_SAMPLER = "tpe"
TPE_STARTUP_TRIALS = 10  # Optuna's default: random trials before TPE models the results
MEDIAN_STARTUP_TRIALS = 5  # the median pruner prunes nothing before this many completed
SEED_RANGE = 1_000_000  # a drawn sampler seed: short enough to read and to type again


SamplerFactory = Callable[[Space, "int | None"], optuna.samplers.BaseSampler]
PrunerFactory = Callable[[int], optuna.pruners.BasePruner]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
PRUNERS: Registry[PrunerFactory] = Registry("pruner")


def _tpe(space: Space, seed: int | None) -> optuna.samplers.BaseSampler:
    # group=True: multivariate TPE models each model's conditional sub-space on its own.
    with warnings.catch_warnings():  # multivariate and group are "experimental" since 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True,
            group=len(space) > 1,
            seed=seed,
            n_startup_trials=TPE_STARTUP_TRIALS,
            constant_liar=True,  # parallel workers do not all sample the same point
        )


def _one_model(space: Space, sampler: str) -> dict[str, Param]:
    if len(space) != 1:
        raise UserInputError(
            f"The {sampler} sampler searches one model's space; pass one model "
            f"(--model) or use the tpe or random sampler to search {', '.join(space)}."
        )
    return next(iter(space.values()))


def _grid(space: Space, seed: int | None) -> optuna.samplers.BaseSampler:
    params = _one_model(space, "grid")
    grid = {p: grid_values(r) for p, r in params.items() if len(grid_values(r)) > 1}
    if not grid:
        raise UserInputError("Every parameter is fixed; there is nothing for a grid to search.")
    return optuna.samplers.GridSampler(grid, seed=seed)


def _cmaes(space: Space, seed: int | None) -> optuna.samplers.BaseSampler:
    params = _one_model(space, "cmaes")
    if not any(isinstance(r, (FloatRange, IntRange)) and r.low < r.high for r in params.values()):
        raise UserInputError("CMA-ES needs at least one numeric range; use tpe or grid instead.")
    try:
        import cmaes  # noqa: F401
    except ImportError as error:
        raise SetupError("The cmaes sampler needs the cmaes package: pip install cmaes") from error
    # Categorical parameters (heads, aggr) fall back to random sampling.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


SAMPLERS.register("tpe", _tpe, aliases=("bayes", "bayesian", "tree-parzen"))
SAMPLERS.register(
    "random", lambda space, seed: optuna.samplers.RandomSampler(seed=seed), aliases=("rand",)
)
SAMPLERS.register("grid", _grid, aliases=("gridsearch",))
SAMPLERS.register("cmaes", _cmaes, aliases=("cma",))

PRUNERS.register(
    "median",
    # Five full trials set the median; no pruning in the first 10% of epochs (noisy starts).
    lambda epochs: optuna.pruners.MedianPruner(
        n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=epochs // 10
    ),
)
PRUNERS.register(
    "hyperband",
    lambda epochs: optuna.pruners.HyperbandPruner(
        min_resource=max(1, epochs // 20), max_resource=epochs, reduction_factor=3
    ),
)
PRUNERS.register("none", lambda epochs: optuna.pruners.NopPruner(), aliases=("off", "nop"))


def draw_seed() -> int:
    """A fresh sampler seed, for a search whose request named none: recorded with the run,
    it repeats the same trials."""
    return secrets.randbelow(SEED_RANGE)


def independent_trials(sampler: str, n_trials: int) -> int:
    """How many of the first `n_trials` trials `sampler` draws without looking at results."""
    name = SAMPLERS.resolve(sampler)
    if name in ("random", "grid"):
        return n_trials
    if name == "tpe":
        return min(n_trials, TPE_STARTUP_TRIALS)
    return min(n_trials, 1)  # CMA-ES: its first point only


def planned_draws(
    space: Space, sampler: str, seed: int, n_trials: int
) -> list[tuple[str, dict[str, Value]]]:
    """The (model, parameters) of the trials a fresh, one-worker study with this sampler and
    seed draws before results steer it, replayed in memory: what `graph_ml.tune` will train.

    Later trials depend on the results; a study resumed from earlier trials, or with several
    workers, draws differently (each worker seeds with `seed + k`)."""
    n = independent_trials(sampler, n_trials)
    if n == 0:
        return []
    with warnings.catch_warnings(), quiet_optuna():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize",
                                    sampler=SAMPLERS.get(sampler)(space, seed))  # fmt: skip
        draws = []
        for _ in range(n):
            trial = study.ask()
            draws.append(suggest(trial, space))
            study.tell(trial, 0.0)  # no result steers these draws
    return draws


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines off (the caller shows progress its own way)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
