"""Does the tuner earn its keep? TPE against random search, pruning against none, on Cora.

One run, three parts, all on GCN's default search space (its `ModelSpec.search` in the
catalogue), the public Planetoid split, 200 epochs per trial with early stopping after 50
without progress:

1. TPE (multivariate) vs random search, `--trials` trials per study, sampler seeds 0, 1, 2,
   no pruning: the best validation accuracy of each study, each sampler's mean, wall time.
   Target: TPE mean >= random mean.
2. The same TPE studies with the median pruner: total epochs trained with and without pruning
   at equal trials. Target: >= 30% fewer epochs, mean best validation within 0.5 points.
3. The best TPE configuration of part 1 (highest validation accuracy) retrained on 10 seeds:
   test accuracy mean ± std. Target: >= 81.5. Printed before part 2.

Every trial trains with seed 0, so configurations compete on equal terms; retraining uses
seeds 0-9. Studies go to a fresh SQLite file (`--storage` to keep them).

    OMP_NUM_THREADS=1 python bench/hpo.py                 # ~30-60 min on one shared CPU
    OMP_NUM_THREADS=1 python bench/hpo.py --trials 10 --sampler-seeds 0   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from graph_ml.datasets import load_dataset  # noqa: E402
from graph_ml.train import train  # noqa: E402
from graph_ml.tune import Objective, TuneResult, make_config, resolve, tune  # noqa: E402


def study(args: argparse.Namespace, sampler: str, pruner: str, seed: int, dataset) -> TuneResult:
    config = make_config(
        dataset="cora",
        task="node_classification",
        models=["gcn"],
        n_trials=args.trials,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        epochs=args.epochs,
        patience=args.patience,
        retrain_seeds=0,
        storage=args.storage,
        study=f"hpo-{sampler}-{pruner}-s{seed}-{args.trials}x{args.epochs}",
    )
    return tune(config, dataset=dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--sampler-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=50)
    parser.add_argument("--retrain-seeds", type=int, default=10)
    parser.add_argument("--storage", default=None, help="default: a fresh temporary SQLite file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory(prefix="autoglm-hpo-")
    args.storage = args.storage or str(Path(tmp.name) / "hpo.sqlite")
    dataset = load_dataset("cora")
    started = time.perf_counter()

    runs: dict[tuple[str, str], list[TuneResult]] = {}

    def run_studies(sampler: str, pruner: str) -> None:
        for seed in args.sampler_seeds:
            result = study(args, sampler, pruner, seed, dataset)
            runs.setdefault((sampler, pruner), []).append(result)
            print(
                f"  {sampler:6s} pruner={pruner:6s} seed={seed}: best val "
                f"{100 * result.best_value:.2f}  epochs {result.epochs_trained:6d}  "
                f"pruned {result.n_pruned:2d}/{result.n_trials}  {result.seconds:6.0f} s",
                flush=True,
            )

    def mean_best(key: tuple[str, str]) -> float:
        return 100 * statistics.fmean(r.best_value for r in runs[key])

    # Part 1: samplers.
    run_studies("tpe", "none")
    run_studies("random", "none")
    print(f"\n## Sampler comparison: GCN on Cora, {args.trials} trials per study, no pruning")
    print("| sampler | best val acc per seed | mean | wall time (s) |")
    print("|---|---|---|---|")
    for sampler in ("tpe", "random"):
        rs = runs[(sampler, "none")]
        per_seed = ", ".join(f"{100 * r.best_value:.2f}" for r in rs)
        wall = sum(r.seconds for r in rs)
        print(f"| {sampler} | {per_seed} | {mean_best((sampler, 'none')):.2f} | {wall:.0f} |")
    tpe, rnd = mean_best(("tpe", "none")), mean_best(("random", "none"))
    verdict = "PASS" if tpe >= rnd else "FAIL"
    print(f"TPE mean - random mean: {tpe - rnd:+.2f} points (target >= 0): {verdict}", flush=True)

    # Part 3 (before part 2, which only adds pruning): the tuned GCN retrained on 10 seeds.
    best = max(runs[("tpe", "none")], key=lambda r: r.best_value)
    plan = resolve(
        make_config(dataset="cora", models=["gcn"], epochs=args.epochs, patience=args.patience)
    )
    config = Objective(plan, dataset).train_config(
        "gcn", best.best_params, seeds=args.retrain_seeds, seed=0
    )
    retrained = train(config, dataset=dataset)
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.best_params.items()
    )
    test = 100 * retrained.test_mean
    print(f"\n## Tuned GCN ({best.study}, val {100 * best.best_value:.2f}): {params}")
    print(
        f"test accuracy over {args.retrain_seeds} seeds: {test:.2f} ± "
        f"{100 * retrained.test_std:.2f} (target >= 81.5): {'PASS' if test >= 81.5 else 'FAIL'}",
        flush=True,
    )

    # Part 2: pruning, against the TPE studies of part 1 (same sampler seeds and trials).
    run_studies("tpe", "median")
    print(f"\n## Pruning: TPE, {args.trials} trials per study, same sampler seeds")
    print("| pruner | epochs trained (total) | pruned trials | mean best val acc | wall (s) |")
    print("|---|---|---|---|---|")
    epochs = {}
    for pruner in ("none", "median"):
        rs = runs[("tpe", pruner)]
        epochs[pruner] = sum(r.epochs_trained for r in rs)
        pruned = sum(r.n_pruned for r in rs)
        wall = sum(r.seconds for r in rs)
        print(
            f"| {pruner} | {epochs[pruner]} | {pruned}/{sum(r.n_trials for r in rs)} | "
            f"{mean_best(('tpe', pruner)):.2f} | {wall:.0f} |"
        )
    saved = 1 - epochs["median"] / epochs["none"]
    gap = mean_best(("tpe", "median")) - tpe
    print(
        f"epochs saved by pruning: {100 * saved:.1f}% (target >= 30%): "
        f"{'PASS' if saved >= 0.30 else 'FAIL'}; best val change {gap:+.2f} points "
        f"(target within 0.5): {'PASS' if abs(gap) <= 0.5 else 'FAIL'}"
    )
    print(f"total wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
