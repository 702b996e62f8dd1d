"""Do typed models read what a flattened graph loses? Two tables.

1. The planted user-item graph (`graph_ml.hetero_data.planted_user_item`: users buy items of
   their group's class and view items of the class two steps away). Node classification of
   items, test accuracy over `--seeds` graphs and training seeds (each seed draws a new
   graph and a new split): the typed models (R-GCN, HGT, to_hetero SAGE and GAT), the typed
   MLP, and GCN / SAGE on the same graph flattened to one node and one edge type.
2. MUTAG with its bond types as relations: R-GCN against GIN and GCN, which see the bonds
   as one type; stratified 10-fold test accuracy, every model for the same `--mutag-epochs`.

    OMP_NUM_THREADS=1 AUTOGLM_DATA_DIR=/work/shared/datasets python bench/hetero.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

TYPED = ("rgcn", "hgt", "sage", "gat", "mlp")
FLAT = ("gcn", "sage")


def _row(name: str, scores: list[float], seconds: float) -> str:
    mean = statistics.fmean(scores)
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"| {name} | {100 * mean:.1f} ± {100 * std:.1f} | {len(scores)} | {seconds:.0f} |"


def planted_table(seeds: int, epochs: int) -> None:
    from graph_ml.hetero_data import flatten, planted_user_item
    from graph_ml.train import TrainConfig, train

    graphs = [planted_user_item(seed=s) for s in range(seeds)]
    print(f"\nPlanted user-item graph: 400 users, 600 items, 4 classes; {seeds} seeds, "
          f"{epochs} epochs; test accuracy (%)")  # fmt: skip
    print("| model | accuracy | seeds | seconds |\n|---|---:|---:|---:|")
    runs = [(f"{m} (typed)", m, False) for m in TYPED]
    runs += [(f"{m} (flattened, homogeneous)", m, True) for m in FLAT]
    for label, model, flat in runs:
        start, scores = time.perf_counter(), []
        for seed, ds in enumerate(graphs):
            data = flatten(ds) if flat else ds
            config = TrainConfig(dataset=data.spec.name, model=model, epochs=epochs, seed=seed,
                                 progress=False)  # fmt: skip
            scores.append(train(config, dataset=data).test_mean)
        print(_row(label, scores, time.perf_counter() - start), flush=True)
    print("Chance is 25%; flattened, classes c and c+2 share a neighbourhood (<= ~50%).")


def mutag_table(epochs: int, data_dir: str | None) -> None:
    from graph_ml.train import TrainConfig, train

    print(f"\nMUTAG (188 molecules), stratified 10-fold, {epochs} epochs each; test accuracy (%)")
    print("| model | accuracy | folds | seconds |\n|---|---:|---:|---:|")
    for label, model in (("rgcn (4 bond types as relations)", "rgcn"),
                         ("gin (bonds as one type)", "gin"),
                         ("gcn (bonds as one type)", "gcn")):  # fmt: skip
        start = time.perf_counter()
        config = TrainConfig(dataset="mutag", model=model, epochs=epochs, data_dir=data_dir,
                             progress=False)  # fmt: skip
        result = train(config)
        scores = [run.test_metric for run in result.runs]
        print(_row(label, scores, time.perf_counter() - start), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--mutag-epochs", type=int, default=100)
    parser.add_argument("--data-dir", default=os.environ.get("AUTOGLM_DATA_DIR"))
    parser.add_argument("--skip-mutag", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    planted_table(args.seeds, args.epochs)
    if not args.skip_mutag:
        mutag_table(args.mutag_epochs, args.data_dir)


if __name__ == "__main__":
    main()
