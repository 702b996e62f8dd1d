"""A cost model calibrated on this machine: how long a plan will take and how much memory.

`estimate_plan(...)` answers the router's budget rule from a profile measured here, once:

- The probe (`python -m graph_ml.estimate --probe`, run in a fresh process so that what it
  measures is the training stack alone) trains each model family through the real trainer
  (`graph_ml.train.train`, checkpoints and curves included) on two synthetic graphs of known
  size, for a few epochs each, plus one graph-classification run per family. It fits, per
  family, seconds per epoch = `a + b * work`, where `work` counts the multiply-adds of one
  epoch from the graph's size and the model's width (`work()` below); it also measures the
  per-run setup, the per-epoch cost of logging an epoch to SQLite, and the resident memory
  of the stack and of the data and activations.
- The profile is cached in `<cache dir>/cost_model.json` under a key made of the hardware
  (CPU model, cores, torch threads, CUDA device) and the versions (torch, PyG, open-autoglm,
  the probe's own version): new hardware or an upgrade measures again.
- A plan's estimate scales the profile by the dataset's size from the catalogue
  (`DatasetSize`), the epochs (with early stopping: the expected stop, `expected_epochs`),
  seeds, k-fold runs, trials and the retraining. A tune's sampler seed is drawn before it
  runs, so its first trials (TPE's random start-up ones) are known and each is priced as
  drawn (`graph_ml.samplers.planned_draws`); after the median pruner's start-up trials,
  about half the trials are taken to be pruned half-way.

The probe takes about 30-60 s of one core; `AUTOGLM_COST_PROBE=0` skips it and uses
`FALLBACK` (rough, and says so in `Estimate.basis`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_VERSION = 13
PROBE_SECONDS_SAID = "30-60"  # what the first run announces: the probe and its warm import
# timing took 46 s on this 2-core host (38 s + 7 s), 71 s while another process ran
# Node-classification families probed through the trainer, and the graph-level ones.
NODE_FAMILIES = ("gcn", "gat", "gatv2", "sage", "gin", "mlp", "sgc", "appnp")
GRAPH_FAMILIES = ("gin", "gcn", "gat", "sage", "mlp")
# Two synthetic graphs (nodes, edges, features): a karate-sized one, whose epoch is nearly
# all fixed cost, and a Cora-sized one, whose epoch is mostly compute.
PROBE_SIZES = ((60, 300, 32), (3000, 12000, 1500))
PROBE_EPOCHS = (2, 8)  # two run lengths separate the per-run setup from the per-epoch cost
PROBE_REPEATS = 2
# What a process's first run of each kind imports, in order (each timed after the ones
# before it): a later run in the same process finds them loaded.
FIRST_IMPORTS = ("torch", "torch_geometric", "graph_ml.train", "tools", "scipy.stats",
                 "optuna", "sqlalchemy", "optuna.storages._rdb.storage",
                 "graph_ml.tune")  # fmt: skip
NEEDS = {"train": ("torch", "torch_geometric", "graph_ml.train", "tools"),
         "compare": ("torch", "torch_geometric", "graph_ml.train", "tools", "scipy.stats"),
         "tune": FIRST_IMPORTS}  # fmt: skip
WIDE = 64  # the second width of `_feature_passes` (the catalogue's GCN default is 16)
LONG_TRIAL = 20  # epochs of the probe's long trials: 90 more epochs than the short ones, so
# the ~5 ms a trial epoch adds stands out of the timing noise (with 30 it read 5-14 ms)
BIG_FEATURES = 4000  # a third graph, CiteSeer-wide, for the feature-bandwidth term
FEATURE_DENSITY = 0.013  # Cora's share of non-zero features (CiteSeer 0.9%)
PROBE_GRAPHS = (120, 18, 7)  # graphs, nodes per graph, features: a MUTAG-like set
GRAPH_WIDER = 4  # GIN's second width in the graph-level probe, times its default: 64 -> 256,
# the top of its search range (every family at two widths added 16 s to the probe)
FALLBACK_FIXED_SHARE = 0.5  # share of a graph-level epoch that does not grow with the model
# Early stopping: validation usually peaks within the first `patience` epochs under the
# catalogue's learning rates (Cora GCN peaks near epoch 30-190, GAT near 100-300), so a run
# stops around best + patience; we take best = patience, the budget when it is shorter.
BEST_EPOCH_OVER_PATIENCE = 1.0
PRUNED_SHARE = 0.5  # a pruned trial ran, on average, about half its epochs (median pruner)
DEFAULT_TRIALS = 20
TRIAL_PATIENCE = 50  # graph_ml.tune.TuneConfig.patience: trials stop early too

# Used only when the probe is switched off: a 2020s laptop core, rough.
FALLBACK: dict[str, Any] = {
    "basis": "fallback constants (AUTOGLM_COST_PROBE=0): rough",
    "setup_s": 0.3, "log_epoch_s": 0.002, "stack_mb": 450.0, "optuna_mb": 60.0,
    "python_mb": 15.0,
    "node": {m: {"a": 0.004, "b": 2.5e-10, "mb_per_unit": 4e-7} for m in NODE_FAMILIES},
    "graph": {m: {"per_graph_s": 0.0006} for m in GRAPH_FAMILIES},
}  # fmt: skip


# -- the size of one epoch ------------------------------------------------------------------


def work(nodes: float, edges: float, features: float, hp: dict[str, Any],
         passes: float = 0.0) -> float:  # fmt: skip
    """Multiply-adds of one full-batch epoch (forward, backward ~2x, evaluation): the
    feature transform of the first layer, then per layer a message per edge and a dense
    transform per node.

    `passes` is what an epoch spends on the feature matrix whatever the width (dropout on
    it, its copies, reading it for the first layer), in units of one output column of the
    first layer: measured by the probe (`feature_passes`; about 20 here). Without it, time
    would be taken as proportional to the width, and a width-256 trial estimated at 3x what
    it takes (Cora GCN: 16 -> 64 -> 256 hidden took 13 -> 33 -> 95 ms an epoch)."""
    layers = hp.get("num_layers") or 2
    width = (hp.get("hidden_channels") or 64) * (hp.get("heads") or 1)
    return 3.0 * (nodes * features * (width + passes)
                  + layers * (edges * width + nodes * width * width))  # fmt: skip


def expected_epochs(epochs: int, patience: int | None) -> float:
    """Epochs a run is expected to take: the budget, or where early stopping ends it."""
    if not patience or patience >= epochs:
        return float(epochs)
    return float(min(epochs, BEST_EPOCH_OVER_PATIENCE * patience + patience))


# -- the profile: cache key, cache, probe ----------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def profile_key() -> str:
    """Hardware and versions: a change of either measures again."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    parts = {
        "probe": PROBE_VERSION,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "default"),
        "torch": version("torch"),
        "pyg": version("torch_geometric"),
        "autoglm": version("open-autoglm"),
        "python": platform.python_version(),
    }
    return json.dumps(parts, sort_keys=True)


def cache_path() -> Path:
    from core.cache import cache_dir

    return cache_dir() / "cost_model.json"


_LOADED: dict[str, dict[str, Any]] = {}


def load_profile(probe: bool | None = None) -> dict[str, Any]:
    """This machine's profile: cached, else measured now (in a subprocess), else FALLBACK."""
    key = profile_key()
    if key in _LOADED:
        return _LOADED[key]
    path = cache_path()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        _LOADED[key] = cached[key]
        return cached[key]
    if probe is None:
        probe = os.environ.get("AUTOGLM_COST_PROBE", "1") != "0"
    if not probe:
        return FALLBACK
    # Said on screen: a first run must account for every second it takes.
    what = "measuring this machine once for the time and memory estimates"
    print(f"{what} ({PROBE_SECONDS_SAID} s; AUTOGLM_COST_PROBE=0 skips it)...",
          file=sys.stderr, flush=True)  # fmt: skip
    started = time.perf_counter()
    measured = run_probe_subprocess()
    if measured is None:
        print(f"{what}: failed; the estimates use rough constants", file=sys.stderr, flush=True)
        return FALLBACK
    print(f"{what}: done in {time.perf_counter() - started:.1f} s (cached in {path})",
          file=sys.stderr, flush=True)  # fmt: skip
    cached[key] = measured
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two first runs at once
        tmp.write_text(json.dumps(cached, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache: measure again next time
    _LOADED[key] = measured
    return measured


def run_probe_subprocess(timeout: float = 300.0) -> dict[str, Any] | None:
    """Run the probe in a fresh process; None when it fails (the estimate then says so)."""
    measured = _run_fresh("--probe", timeout)
    if measured is None:
        return None
    # The probe's own imports were the first after an install: Python compiled every module
    # to bytecode and read it from a cold disk (torch 11 s, PyG 35 s measured here, against
    # 1.5 s each afterwards). Every later process finds them compiled and cached, so they
    # are timed again in a second fresh process, as later runs will pay them.
    warm = _run_fresh("--imports", timeout)
    if warm:
        measured["import_s"], measured["import_mb"] = warm["import_s"], warm["import_mb"]
    return measured


def _run_fresh(flag: str, timeout: float) -> dict[str, Any] | None:
    """`python -m graph_ml.estimate <flag>` in a fresh process: the JSON it printed last,
    or None when it failed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "graph_ml.estimate", flag],
            capture_output=True, text=True, timeout=timeout, env=env,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def time_imports() -> tuple[dict[str, float], dict[str, float]]:
    """Seconds and resident MB each of `FIRST_IMPORTS` adds when imported in this order:
    module -> seconds, module -> MB (after those before it)."""
    import importlib

    import_s: dict[str, float] = {}
    import_mb: dict[str, float] = {}
    for module in FIRST_IMPORTS:
        start, before = time.perf_counter(), _rss_mb()
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        import_s[module] = time.perf_counter() - start
        import_mb[module] = max(0.0, _rss_mb() - before)
    return import_s, import_mb


def probe() -> dict[str, Any]:
    """Measure this machine (run in a fresh process: `python -m graph_ml.estimate --probe`)."""
    python_mb = _rss_mb()
    import tempfile

    import_s, import_mb = time_imports()
    import torch
    from torch_geometric.data import Data

    from graph_ml.catalogue import DATASETS, MODELS
    from graph_ml.datasets import LoadedDataset
    from graph_ml.train import TrainConfig, train

    stack_mb = _rss_mb()
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    generator = torch.Generator().manual_seed(0)

    def node_graph(n: int, e: int, f: int) -> Data:
        # Binary bag-of-words features as in the Planetoid sets (Cora: 1.3% non-zero), at
        # least one per node: dropout on them costs per non-zero (`FeatureDropout`).
        x = (torch.rand(n, f, generator=generator) < FEATURE_DENSITY).float()
        x[torch.arange(n), torch.randint(0, f, (n,), generator=generator)] = 1.0
        y = torch.randint(0, 4, (n,), generator=generator)
        edge_index = torch.randint(0, n, (2, e), generator=generator)
        return Data(x=x, y=y, edge_index=edge_index)

    def timed(config: TrainConfig, dataset: LoadedDataset, folder: str) -> float:
        """The faster of two runs: a load spike on a shared machine must not become the
        machine's speed."""
        best = math.inf
        for _ in range(PROBE_REPEATS):
            start = time.perf_counter()
            train(config, dataset=dataset, checkpoint_dir=folder)
            best = min(best, time.perf_counter() - start)
        return best

    sbm = DATASETS.get("sbm")
    out: dict[str, Any] = {"basis": "probe", "python_mb": python_mb, "stack_mb": stack_mb,
                           "import_s": import_s, "import_mb": import_mb,
                           "node": {}, "graph": {}}  # fmt: skip
    setups = []
    with tempfile.TemporaryDirectory() as folder:
        graphs = [node_graph(*size) for size in PROBE_SIZES]
        # The first run pays one-time costs (lazy imports, first allocations): not timed.
        warm = dict(dataset="sbm", patience=0, progress=False, device="cpu", split="random")
        for model in NODE_FAMILIES:
            timed(TrainConfig(**warm, model=model, epochs=2), LoadedDataset(spec=sbm,
                  graphs=[graphs[1]]), folder)  # fmt: skip
        passes = out["feature_passes"] = _feature_passes(graphs[1], timed, sbm, LoadedDataset,
                                                         TrainConfig, folder)  # fmt: skip
        for model in NODE_FAMILIES:
            hp = MODELS.get(model).hparams("node_classification")
            points, peak = [], 0.0
            for size, graph in zip(PROBE_SIZES, graphs, strict=True):
                dataset = LoadedDataset(spec=sbm, graphs=[graph])
                base = dict(dataset="sbm", model=model, patience=0, progress=False,
                            device="cpu", split="random")  # fmt: skip
                short = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[0]), dataset, folder)
                before = _rss_mb()
                long = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[1]), dataset, folder)
                peak = max(peak, _rss_mb() - before)
                per_epoch = max(1e-5, (long - short) / (PROBE_EPOCHS[1] - PROBE_EPOCHS[0]))
                setups.append(max(0.0, short - PROBE_EPOCHS[0] * per_epoch))
                points.append((work(*size, hp, passes), per_epoch))
            (w0, t0), (w1, t1) = points
            b = max(0.0, (t1 - t0) / (w1 - w0))
            out["node"][model] = {"a": max(1e-5, t0 - b * w0), "b": b,
                                  "mb_per_unit": max(0.0, peak) / w1}  # fmt: skip
        mutag = DATASETS.get("mutag")
        n_graphs, nodes, feats = PROBE_GRAPHS
        small = []
        for _ in range(n_graphs):
            g = node_graph(nodes, 2 * nodes, feats)
            small.append(Data(x=g.x, edge_index=g.edge_index, y=torch.randint(0, 2, (1,))))
        dataset = LoadedDataset(spec=mutag, graphs=small)
        timed(TrainConfig(dataset="mutag", model="gin", patience=0, progress=False, device="cpu",
                          task="graph_classification", split="random", fold=0, epochs=1),
              dataset, folder)  # fmt: skip
        for model in GRAPH_FAMILIES:
            base = dict(dataset="mutag", model=model, patience=0, progress=False, device="cpu",
                        task="graph_classification", split="random", fold=0)  # fmt: skip
            default = MODELS.get(model).hparams("graph_classification")
            wider = GRAPH_WIDER * (default.get("hidden_channels") or 64)
            per_epoch = {}
            try:
                for width in (None, wider) if model == "gin" else (None,):
                    hp = {"hidden_channels": width} if width else {}
                    short = timed(TrainConfig(**base, **hp, epochs=PROBE_EPOCHS[0]), dataset,
                                  folder)  # fmt: skip
                    long = timed(TrainConfig(**base, **hp, epochs=PROBE_EPOCHS[1]), dataset,
                                 folder)  # fmt: skip
                    span = PROBE_EPOCHS[1] - PROBE_EPOCHS[0]
                    per_epoch[width] = max(1e-5, (long - short) / span)
            except Exception:  # noqa: BLE001 - a family that cannot classify graphs
                continue
            out["graph"][model] = {"per_graph_s": per_epoch[None] / n_graphs}
            if wider in per_epoch:
                # An epoch over small graphs is mostly fixed cost (batching, pooling, the
                # optimiser step): the share that does not grow with the model's work, from
                # GIN at its default width and GRAPH_WIDER times it (MUTAG: 64 -> 256 wide
                # took 0.03 -> 0.09 s an epoch, where its work grew 15x). The other families
                # measured 0.75-0.91 against GIN's 0.79: GIN's share stands for them all.
                wide = {**default, "hidden_channels": wider}
                grows = work(nodes, 2 * nodes, feats, wide, passes) / max(
                    work(nodes, 2 * nodes, feats, default, passes), 1.0)  # fmt: skip
                took = per_epoch[wider] / per_epoch[None]
                fixed = (grows - took) / (grows - 1) if grows > 1 else 1.0
                out["graph_fixed_share"] = min(1.0, max(0.0, fixed))
    out["setup_s"] = sorted(setups)[len(setups) // 2]  # the median run's fixed cost
    out["feature_s"] = _feature_bandwidth(node_graph, timed, sbm, out, LoadedDataset, TrainConfig)
    out.update(_tune_overhead(LoadedDataset(spec=sbm, graphs=[graphs[0]]), out))
    out["log_epoch_s"] = _sqlite_commit_seconds()
    before = _rss_mb()
    import optuna  # noqa: F401 - its import is what a tune adds

    out["optuna_mb"] = _rss_mb() - before
    return out


def _feature_passes(graph, timed, sbm, LoadedDataset, TrainConfig, folder) -> float:
    """`work()`'s width-free feature cost, in first-layer columns: GCN on the large probe
    graph at two widths; what the narrower one took beyond its width's share."""
    from graph_ml.catalogue import MODELS

    hp = MODELS.get("gcn").hparams("node_classification")
    dataset = LoadedDataset(spec=sbm, graphs=[graph])
    per_epoch = {}
    for width in (hp["hidden_channels"], WIDE):
        base = dict(dataset="sbm", model="gcn", patience=0, progress=False, device="cpu",
                    split="random", hidden_channels=width)  # fmt: skip
        short = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[0]), dataset, folder)
        long = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[1]), dataset, folder)
        per_epoch[width] = max(1e-6, (long - short) / (PROBE_EPOCHS[1] - PROBE_EPOCHS[0]))
    n, e, f = PROBE_SIZES[1]
    narrow, wide = hp["hidden_channels"], {**hp, "hidden_channels": WIDE}
    b = max(1e-15, (per_epoch[WIDE] - per_epoch[narrow])
            / max(1.0, work(n, e, f, wide) - work(n, e, f, hp)))  # fmt: skip
    extra = per_epoch[narrow] / b - work(n, e, f, hp)
    return max(0.0, extra / (3.0 * n * f))


def _feature_bandwidth(node_graph, timed, sbm, out, LoadedDataset, TrainConfig) -> float:
    """Seconds per feature entry beyond the probe's large graph: a feature matrix larger than
    the caches makes each pass over it (dropout, the first layer and its gradient) slower
    than its multiply-adds say (CiteSeer: 3327 x 3703). Fitted on one GCN run."""
    import tempfile

    n, e, f = PROBE_SIZES[1][0], PROBE_SIZES[1][1], BIG_FEATURES
    dataset = LoadedDataset(spec=sbm, graphs=[node_graph(n, e, f)])
    base = dict(dataset="sbm", model="gcn", patience=0, progress=False, device="cpu",
                split="random")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        short = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[0]), dataset, folder)
        long = timed(TrainConfig(**base, epochs=PROBE_EPOCHS[1]), dataset, folder)
    per_epoch = (long - short) / (PROBE_EPOCHS[1] - PROBE_EPOCHS[0])
    from graph_ml.catalogue import MODELS

    gcn = out["node"]["gcn"]
    predicted = gcn["a"] + gcn["b"] * work(n, e, f, MODELS.get("gcn").hparams(
        "node_classification"), out.get("feature_passes", 0.0))  # fmt: skip
    extra = n * f - PROBE_SIZES[1][0] * PROBE_SIZES[1][2]
    return max(0.0, (per_epoch - predicted) / extra)


def _tune_overhead(dataset: Any, out: dict[str, Any]) -> dict[str, float]:
    """What a search adds to its trainings: the study (SQLite storage, importances) once,
    the sampler and storage per trial, and per trial epoch the report and the pruner's
    check (the median pruner reads every trial from the storage each epoch: ~4 ms here,
    two thirds of a karate trial). Three searches of 2-epoch and 20-epoch trials on the
    small graph, with the pruner real searches use; the trainings' own cost (from the node
    probe) is taken off."""
    import tempfile

    from graph_ml.tune import TuneConfig, tune

    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for n, epochs in ((2, 2), (5, 2), (5, LONG_TRIAL)):
            config = TuneConfig(dataset="sbm", models=["gcn"], n_trials=n, epochs=epochs,
                                retrain_seeds=0, storage=str(Path(folder) / f"s{n}_{epochs}.db"),
                                study=f"probe{n}_{epochs}", seed=0)  # fmt: skip
            start = time.perf_counter()
            tune(config, dataset=dataset)
            times[n, epochs] = time.perf_counter() - start
    gcn_epoch = out["node"]["gcn"]["a"] + out.get("log_epoch_s", 0.0)
    extra_epochs = 5 * (LONG_TRIAL - 2)
    per_epoch = max(0.0, (times[5, LONG_TRIAL] - times[5, 2]) / extra_epochs - gcn_epoch)
    trial_train = out["setup_s"] + 2 * (gcn_epoch + per_epoch)
    per_trial = max(0.0, (times[5, 2] - times[2, 2]) / 3 - trial_train)
    study = max(0.0, times[2, 2] - 2 * (per_trial + trial_train))
    return {"trial_overhead_s": per_trial, "study_overhead_s": study,
            "trial_epoch_overhead_s": per_epoch}  # fmt: skip


def _sqlite_commit_seconds(n: int = 60) -> float:
    """One epoch row committed in its own transaction, as the store logs epochs (WAL)."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        conn = sqlite3.connect(Path(folder) / "probe.sqlite")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        conn.commit()
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO t VALUES (?, ?)", (i, json.dumps({"loss": 0.1 * i})))
            conn.commit()
        seconds = (time.perf_counter() - start) / n
        conn.close()
    return seconds


# -- estimates ------------------------------------------------------------------------------


@dataclass
class Cost:
    seconds: float
    memory_mb: float
    basis: str
    epochs: float = 0.0  # epochs expected to run (and be logged), over every run


def train_cost(size: Any, model: str, hp: dict[str, Any], task: str, *, seeds: int = 1,
               epochs: int = 200, patience: int | None = None, folds: int = 10,
               profile: dict[str, Any] | None = None, with_stack: bool = True) -> Cost:  # fmt: skip
    """One train run (all its seeds and folds) of `model` with settings `hp` on a dataset of
    catalogue size `size`."""
    profile = profile or load_profile()
    runs = seeds * (folds if task == "graph_classification" else 1)
    n_epochs = expected_epochs(epochs, patience)
    node = profile["node"].get(model) or profile["node"]["gcn"]
    if task == "graph_classification":
        graph = profile["graph"].get(model) or profile["graph"].get("gin") or {}
        per_graph = graph.get("per_graph_s", FALLBACK["graph"]["gin"]["per_graph_s"])
        # The probe's graphs are MUTAG-sized; larger graphs cost in proportion to nodes.
        scale = max(1.0, (size.nodes / max(size.graphs, 1)) / PROBE_GRAPHS[1])
        # The probe trained the family's defaults; wider or deeper settings cost more.
        from graph_ml.catalogue import MODELS

        default = MODELS.get(model).hparams(task) if model in MODELS else hp
        n, e = PROBE_GRAPHS[1], 2 * PROBE_GRAPHS[1]
        passes = profile.get("feature_passes", 0.0)
        grows = work(n, e, size.features, hp, passes) / max(
            work(n, e, size.features, default, passes), 1.0)  # fmt: skip
        fixed = profile.get("graph_fixed_share", FALLBACK_FIXED_SHARE)
        per_epoch = per_graph * size.graphs * scale * (fixed + (1.0 - fixed) * grows)
    else:
        per_epoch = node["a"] + node["b"] * work(size.nodes, size.edges, size.features, hp,
                                                 profile.get("feature_passes", 0.0))  # fmt: skip
        big = size.nodes * size.features - PROBE_SIZES[1][0] * PROBE_SIZES[1][2]
        per_epoch += profile.get("feature_s", 0.0) * max(0, big)
    per_epoch += profile.get("log_epoch_s", 0.0)
    seconds = runs * (profile.get("setup_s", 0.0) + n_epochs * per_epoch)
    data_mb = (4 * size.nodes * size.features + 16 * size.edges) / 2**20
    act_mb = node.get("mb_per_unit", 0.0) * work(size.nodes / max(size.graphs, 1) * 32
                                                 if task == "graph_classification"
                                                 else size.nodes, size.edges / max(size.graphs, 1)
                                                 * 32 if task == "graph_classification"
                                                 else size.edges, size.features, hp)  # fmt: skip
    stack = max(0.0, profile.get("stack_mb", 0.0) - profile.get("python_mb", 0.0))
    memory = (stack if with_stack else 0.0) + 3 * data_mb + act_mb
    return Cost(seconds=seconds, memory_mb=memory, basis=profile.get("basis", "probe"),
                epochs=runs * n_epochs)  # fmt: skip


def search_midpoint(model: str, task: str) -> dict[str, Any]:
    """The model's defaults with each searched number at its mean under the sampler's
    first, random trials (uniform, or log-uniform for a log range): an epoch's cost is
    about linear in the width, so a trial at the mean width costs what trials cost on
    average (hidden 16-256 log-uniform: 87, where the geometric middle 64 read 25% low)."""
    from graph_ml.catalogue import MODELS

    spec = MODELS.get(model)
    hp = dict(spec.hparams(task))
    for name, rng in (getattr(spec, "search", None) or {}).items():
        low, high = getattr(rng, "low", None), getattr(rng, "high", None)
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            if getattr(rng, "log", False) and 0 < low < high:
                mid = (high - low) / math.log(high / low)  # the mean of a log-uniform draw
            else:
                mid = (low + high) / 2
            hp[name] = int(round(mid)) if isinstance(low, int) else mid
    return hp


def current_rss_mb() -> float:
    try:
        return _rss_mb()
    except Exception:  # noqa: BLE001 - psutil missing: no base to add
        return 0.0


def plan_cost(action: str, size: Any, task: str, models: list[str],
              settings: dict[str, dict[str, Any]], *, seeds: int = 1, n_trials: int | None = None,
              trial_epochs: int | None = None,
              draws: list[tuple[str, dict[str, Any]]] | None = None) -> Cost:  # fmt: skip
    """A train, compare or tune plan: seconds and the process's peak resident memory.

    Args:
        settings: model -> its resolved hyper-parameters (epochs and patience included).
        draws: a tune's first trials as its seeded sampler will draw them (model, searched
            parameters: `graph_ml.samplers.planned_draws`), each priced as drawn; the trials
            after them, which the results steer, cost what these cost on average (without
            draws: each model at the mean of its search ranges).
    """
    profile = load_profile()
    # The probe's stack is torch + PyG + the trainer; torch alone (a test, a UI page) is not it.
    stack_loaded = "graph_ml.train" in sys.modules
    # A process's first run of a kind imports what it needs first (torch, PyG, scipy...).
    imports = profile.get("import_s") or {}
    first = sum(imports.get(m, 0.0) for m in NEEDS.get(action, ()) if m not in sys.modules)
    grows = profile.get("import_mb")
    if grows:  # what this action still has to import, module by module (torch may be loaded)
        base = current_rss_mb() + sum(
            grows.get(m, 0.0) for m in NEEDS.get(action, ()) if m not in sys.modules)
    else:
        base = current_rss_mb() + (0.0 if stack_loaded else max(
            0.0, profile.get("stack_mb", 0.0) - profile.get("python_mb", 0.0)))  # fmt: skip
    if action == "tune":
        from graph_ml.samplers import MEDIAN_STARTUP_TRIALS  # optuna: a tune imports it anyway

        trials = n_trials or DEFAULT_TRIALS

        def trial(m: str, searched: dict[str, Any]) -> Cost:
            hp = {**settings[m], **searched}
            return train_cost(size, m, hp, task, seeds=1,
                              epochs=trial_epochs or hp.get("epochs") or 200,
                              patience=TRIAL_PATIENCE, profile=profile,
                              with_stack=False)  # fmt: skip

        planned = [trial(m, params) for m, params in draws or []]
        typical = planned or [trial(m, search_midpoint(m, task)) for m in models]
        mean_run = sum(c.seconds for c in typical) / len(typical)
        mean_epochs = sum(c.epochs for c in typical) / len(typical)
        epoch_overhead = profile.get("trial_epoch_overhead_s", 0.0)  # report + pruning check
        search = profile.get("study_overhead_s", 0.0)
        search += trials * profile.get("trial_overhead_s", 0.0)  # sampler and storage
        for i in range(trials):
            run, epochs = ((planned[i].seconds, planned[i].epochs) if i < len(planned)
                           else (mean_run, mean_epochs))  # fmt: skip
            # After the pruner's start-up trials, about half are pruned about half-way.
            share = 1.0 if i < MEDIAN_STARTUP_TRIALS else 1.0 - PRUNED_SHARE * 0.5
            search += share * (run + epoch_overhead * epochs)
        retrain = mean_run * seeds  # the best configuration again: no pruning, no reports
        return Cost(seconds=first + search + retrain,
                    memory_mb=base + profile.get("optuna_mb", 0.0)
                    + max(c.memory_mb for c in typical),
                    basis=profile.get("basis", "probe"),
                    epochs=mean_epochs * (trials + seeds))  # fmt: skip
    costs = [train_cost(size, m, settings[m], task, seeds=seeds,
                        epochs=settings[m].get("epochs") or 200,
                        patience=settings[m].get("patience"), profile=profile,
                        with_stack=False) for m in models]  # fmt: skip
    return Cost(seconds=first + sum(c.seconds for c in costs),
                memory_mb=base + max(c.memory_mb for c in costs),
                basis=profile.get("basis", "probe"),
                epochs=sum(c.epochs for c in costs))  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe()))
    elif sys.argv[1:] == ["--imports"]:
        seconds, megabytes = time_imports()
        print(json.dumps({"import_s": seconds, "import_mb": megabytes}))
    else:
        print(json.dumps(load_profile(), indent=1))
