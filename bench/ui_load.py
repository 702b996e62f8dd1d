"""How fast does `autoglm ui` answer over a big workspace?

A synthetic workspace with `--runs` stored runs (2,000: train runs over four datasets and
four models, with per-seed results; the first 20 with 100 logged epochs) and one Optuna
study of `--trials` trials (500, four parameters), written through the store and Optuna's
own API. A real `autoglm ui` process serves it on loopback; each page is fetched `--repeats`
times and the median counts. When Playwright and Debian's chromium are present, the
browser's first contentful paint of the experiments list and of the study page is measured
too (median of three navigations, each study load left to finish its plots first), and how
long the study's four plots take to be drawn. Target: first paint <= 1 s.

    OMP_NUM_THREADS=1 python bench/ui_load.py [--runs 2000] [--trials 500]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ui_helpers import free_port, get, ui_process  # noqa: E402

TARGET_MS = 1000.0
# The first contentful paint, from the navigation's start; headless chromium reports it
# through a buffered observer (the entry may arrive after `load`).
FIRST_PAINT_JS = """new Promise((resolve) => {
  new PerformanceObserver((list) => {
    const e = list.getEntries().find((x) => x.name === 'first-contentful-paint');
    if (e) resolve(e.startTime);
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => resolve(-1), 10000);
})"""
DATASETS = ("cora", "citeseer", "karate", "mutag")
MODELS = ("gcn", "gat", "sage", "gin")
CHROMIUM = "/usr/bin/chromium"
ALL_DRAWN = "document.querySelectorAll('.plot[data-drawn]').length >= 4"
PAINTS = 3  # navigations per page; the median counts (the machine is shared)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def fill(workspace: Path, runs: int, trials: int) -> str:
    """Write the runs and the study; returns the study's name."""
    import optuna

    from agent.store import ExperimentStore

    rng = random.Random(0)
    with ExperimentStore(workspace) as store:
        for i in range(runs):
            config = {"dataset": DATASETS[i % 4], "model": MODELS[(i // 4) % 4], "epochs": 200,
                      "hidden": 16, "lr": 0.01, "seeds": 3, "seed": 0}  # fmt: skip
            run_id = store.start_run("train", config)
            values = [rng.uniform(0.6, 0.85) for _ in range(3)]
            if i < 20:
                for seed in range(3):
                    for epoch in range(100):
                        store.log_epoch(run_id, seed, epoch, {"train_loss": 1 / (epoch + 1),
                                                              "val_acc": values[seed]})  # fmt: skip
            mean = statistics.mean(values)
            store.finish_run(run_id, "succeeded",
                             metrics={"test_mean": mean, "test_std": statistics.stdev(values)},
                             result={"runs": [{"seed": s, "test_metric": v, "val_metric": v}
                                              for s, v in enumerate(values)],
                                     "test_mean": mean, "metric": "accuracy"})  # fmt: skip
        storage = store.studies_url()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench-500", storage=storage, direction="maximize")
    dists = {"lr": optuna.distributions.FloatDistribution(1e-3, 5e-2, log=True),
             "hidden": optuna.distributions.IntDistribution(8, 256, log=True),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.8),
             "model": optuna.distributions.CategoricalDistribution(list(MODELS))}  # fmt: skip
    made = []
    for _ in range(trials):
        params = {"lr": 10 ** rng.uniform(-3, -1.3), "hidden": rng.randint(8, 256),
                  "dropout": rng.uniform(0, 0.8), "model": rng.choice(MODELS)}  # fmt: skip
        value = 0.8 - abs(params["dropout"] - 0.5) / 4 + rng.gauss(0, 0.02)
        made.append(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    study.add_trials(made)
    return study.study_name


def timed(url: str, repeats: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        status, body = get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert status == 200, (url, status, body[:300])
        size = len(body)
    return statistics.median(times), size


def browser_paint(base: str, study: str) -> list[tuple[str, float]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    if not Path(CHROMIUM).is_file():
        return []
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(base + "/data")  # warm the browser cache with ui.css/ui.js, as a user would
        for name, path in (("/ (2,000 runs)", "/"), (f"/studies/{study}", f"/studies/{study}")):
            paints, drawn = [], []
            for _ in range(PAINTS):
                page.goto(base + path, wait_until="load")
                paints.append(page.evaluate(FIRST_PAINT_JS))
                if "studies" in path:  # let its plots finish: the next load starts quiet
                    page.wait_for_function(ALL_DRAWN, timeout=120_000)
                    drawn.append(page.evaluate("performance.now()"))
            out.append((f"browser first paint {name}", statistics.median(paints)))
            if drawn:
                out.append((f"browser: 4 study plots drawn {name}", statistics.median(drawn)))
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        start = time.perf_counter()
        study = fill(workspace, args.runs, args.trials)
        print(f"wrote {args.runs} runs and a {args.trials}-trial study in "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        port = free_port()
        with ui_process(["--workspace", str(workspace)], port) as base:
            rows = []
            for path in ("/", "/api/runs", "/runs/1", "/compare?ids=1,2", "/studies",
                         f"/studies/{study}", *(f"/api/studies/{study}/plots/{k}"
                                                for k in ("history", "importance", "parallel",
                                                          "slice"))):  # fmt: skip
                ms, size = timed(base + path, args.repeats)
                rows.append((f"GET {path}", ms, size))
            paints = browser_paint(base, study)
    print(f"\n{'what':<52} {'ms':>8} {'bytes':>10}")
    for name, ms, size in rows:
        print(f"{name:<52} {ms:8.0f} {size:10d}")
    for name, ms in paints:
        print(f"{name:<52} {ms:8.0f}")
    if not paints:
        print("(no browser: install playwright and chromium for the first-paint figures)")
    worst = max([ms for name, ms in paints if "first paint" in name] or
                [rows[0][1], rows[5][1]])  # fmt: skip
    verdict = "meets" if worst <= TARGET_MS else "misses"
    print(f"\nfirst paint {worst:.0f} ms: {verdict} the target of {TARGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
