"""Reproduce published results with `graph_ml.train.train()` and the models' default recipes.

Node classification: public Planetoid split, 10 seeds, row-normalised features, weights of
the epoch with the best validation accuracy (ties: lower validation loss), test accuracy as
mean ± sample std over seeds. Graph classification (GIN on MUTAG): stratified 10-fold cross
validation, one seed, reported two ways:

- "val-selected": each fold keeps the epoch with the best accuracy on a validation tenth of
  its training part, and is scored on its test fold (no test information used);
- "GIN protocol": as in Xu et al. 2019, the single epoch whose test accuracy averaged over the
  10 folds is highest (this selects on the test folds; it is the protocol behind the paper's
  89.4 ± 5.6, and the target is checked against it).

    OMP_NUM_THREADS=1 python bench/reproduce.py            # everything (~15-30 min on 1 CPU)
    OMP_NUM_THREADS=1 python bench/reproduce.py --only gcn-cora gin-mutag
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from graph_ml.train import TrainConfig, TrainResult, train  # noqa: E402


@dataclass
class Experiment:
    key: str
    label: str
    paper: str  # the published figure, as printed in the paper
    target: float  # our pass mark, in percent
    config: dict[str, Any] = field(default_factory=dict)


EXPERIMENTS = (  # cheapest first, so an interrupted run still reports something
    Experiment("gcn-cora", "GCN Cora", "81.5", 81.0, dict(model="gcn", dataset="cora")),
    Experiment("gcn-citeseer", "GCN CiteSeer", "70.3", 70.0, dict(model="gcn", dataset="citeseer")),
    Experiment("sage-cora", "GraphSAGE Cora", "-", 80.0, dict(model="sage", dataset="cora")),
    Experiment(
        "gin-mutag", "GIN MUTAG (10-fold)", "89.4 ± 5.6", 85.0, dict(model="gin", dataset="mutag")
    ),
    Experiment("gat-cora", "GAT Cora", "83.0 ± 0.7", 82.5, dict(model="gat", dataset="cora")),
    Experiment(
        "gat-citeseer", "GAT CiteSeer", "72.5 ± 0.7", 71.0, dict(model="gat", dataset="citeseer")
    ),
)


def run(exp: Experiment, seeds: int) -> list[tuple[str, float, float, str]]:
    """Train one experiment; rows of (protocol, mean %, std %, note)."""
    if exp.config["dataset"] == "mutag":
        config = TrainConfig(**exp.config, task="graph_classification", folds=10, progress=False)
        result = train(config)
        best_epoch, mean, std = gin_protocol(result)
        return [
            ("val-selected, 10 folds", 100 * result.test_mean, 100 * result.test_std, ""),
            ("GIN protocol, 10 folds", 100 * mean, 100 * std, f"epoch {best_epoch}"),
        ]
    config = TrainConfig(
        **exp.config, task="node_classification", split="public", seeds=seeds, progress=False
    )
    result = train(config)
    epochs = statistics.fmean(r.best_epoch for r in result.runs)
    note = f"best epoch ~{epochs:.0f}"
    return [(f"val-selected, {seeds} seeds", 100 * result.test_mean, 100 * result.test_std, note)]


def gin_protocol(result: TrainResult) -> tuple[int, float, float]:
    """Epoch with the best fold-averaged test accuracy, and the folds' mean and std there."""
    epochs = min(len(r.curves) for r in result.runs)
    per_epoch = [[r.curves[e]["test_metric"] for r in result.runs] for e in range(epochs)]
    best = max(range(epochs), key=lambda e: statistics.fmean(per_epoch[e]))
    return best + 1, statistics.fmean(per_epoch[best]), statistics.stdev(per_epoch[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=[e.key for e in EXPERIMENTS])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for exp in EXPERIMENTS:
        if args.only and exp.key not in args.only:
            continue
        start = time.perf_counter()
        results = run(exp, args.seeds)
        seconds = time.perf_counter() - start
        for i, (protocol, mean, std, note) in enumerate(results):
            checked = i == len(results) - 1  # MUTAG: the GIN-protocol row is the checked one
            verdict = ("PASS" if mean >= exp.target else "FAIL") if checked else "(info)"
            ours, target = f"{mean:.1f} ± {std:.1f}", f">= {exp.target:.1f}"
            timing = f"{seconds:.0f}s {note}".strip()
            rows.append((exp.label, protocol, ours, exp.paper, target, verdict, timing))
        done = rows[-len(results) :]
        print(f"done {exp.label} in {seconds:.0f}s:", *done, sep="\n  ", flush=True)
    header = ("experiment", "protocol", "ours (test %)", "paper", "target", "result", "time")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
