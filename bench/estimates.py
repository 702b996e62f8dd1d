"""Estimated vs measured time and memory for train, compare and tune runs.

Runs 12 small plans (train, compare, tune on karate, cora, citeseer, mutag) through a chat
session with a scripted planner, and prints, per run, the router's estimate (the cost model
of `graph_ml.estimate`, calibrated on this machine by its probe) against what the run's tool
step measured, with the ratio measured/estimated, and the worst ratio either way (target:
within 1.5x).

    python bench/estimates.py            # about 2-4 minutes on one core (the first run also
                                         # probes the machine, ~20 s, cached afterwards)

Numbers depend on the machine and its load; say which when quoting them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PLANS: list[dict[str, Any]] = [
    {"action": "train", "dataset": "karate", "model": "gcn", "epochs": 200, "seeds": 3},
    {"action": "compare", "dataset": "karate", "models": ["gcn", "gat"], "epochs": 100,
     "seeds": 2},
    {"action": "tune", "dataset": "karate", "models": ["gcn", "sage"], "n_trials": 6,
     "epochs": 30, "seeds": 2},
    {"action": "train", "dataset": "cora", "model": "gcn", "epochs": 100, "seeds": 2},
    {"action": "compare", "dataset": "cora", "models": ["gcn", "mlp"], "epochs": 50, "seeds": 2},
    {"action": "tune", "dataset": "cora", "model": "gcn", "n_trials": 4, "epochs": 30,
     "seeds": 1},
    {"action": "train", "dataset": "citeseer", "model": "gcn", "epochs": 100, "seeds": 1},
    {"action": "compare", "dataset": "citeseer", "models": ["gcn", "sage"], "epochs": 30,
     "seeds": 2},
    {"action": "tune", "dataset": "citeseer", "model": "gcn", "n_trials": 3, "epochs": 20,
     "seeds": 1},
    {"action": "train", "dataset": "mutag", "model": "gin", "epochs": 20, "seeds": 1},
    {"action": "compare", "dataset": "mutag", "models": ["gin", "gcn"], "epochs": 10,
     "seeds": 1},
    {"action": "tune", "dataset": "mutag", "model": "gin", "n_trials": 3, "epochs": 10,
     "seeds": 1},
]  # fmt: skip
TARGET = 1.5


def ratio(measured: float | None, estimated: float | None) -> float | None:
    if not measured or not estimated:
        return None
    return measured / estimated


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from agent.llm.fake import FakeBackend
    from agent.session import Session, SessionOptions
    from agent.store import ExperimentStore
    from bench.explain_audit import request_text
    from graph_ml.estimate import load_profile

    start = time.perf_counter()
    profile = load_profile()
    print(f"cost model: {profile.get('basis')} ({time.perf_counter() - start:.1f} s to load "
          "or probe)")  # fmt: skip
    data_dir = os.environ.get("AUTOGLM_DATA_DIR")
    rows, worst_time, worst_memory = [], 1.0, 1.0
    header = (f"{'dataset':9} {'action':8} {'est s':>8} {'took s':>8} {'ratio':>6}  "
              f"{'est MB':>7} {'peak MB':>7} {'ratio':>6}")  # fmt: skip
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        store = ExperimentStore(Path(tmp) / "ws")
        for plan in PLANS:
            backend = FakeBackend([json.dumps({"actions": [plan]})])
            session = Session(backend, store, options=SessionOptions(
                data_dir=Path(data_dir) if data_dir else None))  # fmt: skip
            outcome = session.handle(request_text(plan)).outcomes[0]
            t = ratio(outcome.seconds, outcome.estimated_seconds)
            m = ratio(outcome.peak_memory_mb, outcome.estimated_memory_mb)
            if t:
                worst_time = max(worst_time, t, 1 / t)
            if m:
                worst_memory = max(worst_memory, m, 1 / m)
            rows.append((plan, outcome, t, m))
            print(f"{plan['dataset']:9} {plan['action']:8} "
                  f"{outcome.estimated_seconds or 0:8.2f} {outcome.seconds or 0:8.2f} "
                  f"{t or 0:6.2f}  {outcome.estimated_memory_mb or 0:7.0f} "
                  f"{outcome.peak_memory_mb or 0:7.0f} {m or 0:6.2f}  {outcome.status}",
                  flush=True)  # fmt: skip
        store.close()
    print(f"{len(rows)} runs; worst time ratio {worst_time:.2f}x, worst memory ratio "
          f"{worst_memory:.2f}x (either way; target <= {TARGET}x)")  # fmt: skip
    return 0 if worst_time <= TARGET and worst_memory <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
