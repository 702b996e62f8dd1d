"""What a user waits: each command as a fresh `autoglm` process, median of N runs.

    python bench/latency.py                 # 5 runs of each command
    python bench/latency.py --repeats 3 --cold

Measured, whole process: `--help`, `datasets`, `experiments list`, `plan` and `run` with the
embedded model, and the same `plan`/`run` with the model replaced by a constant stub (a
loopback OpenAI-compatible server that always answers the same JSON; AUTOGLM_LLM points at
it): the difference is what the model costs. Each row gives wall time, CPU time (user +
system: on a machine shared with other work wall time grows, CPU time does not) and peak
resident memory (the child's own rusage), with ratios against the stub measured in the same
run. Then the on-disk footprint: the venv, the prepared model, the saved prompt states.

`--cold` also times one first start in an empty cache and models directory (the model
assembled and verified, the system prompt prefilled and saved) and prints each line that
start wrote with the second it appeared, so every second of it can be accounted for.
Load averages are printed before and after: numbers taken under load are not comparable.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAN_TEXT = "Train a GCN on Cora for 100 epochs"
RUN_TEXT = "Train a GCN on the karate club graph for 100 epochs"
STUB_ANSWERS = {  # what the stub model says: the plan each text asks for
    "plan": {"actions": [{"action": "train", "dataset": "cora", "model": "gcn", "epochs": 100}]},
    "run": {"actions": [{"action": "train", "dataset": "karate", "model": "gcn", "epochs": 100}]},
}
TARGETS_S = {"--help": 0.5, "datasets": 0.5, "experiments list": 0.5, "plan": 2.0, "run": 5.0}
TARGET_PLAN_MB = 1024


@dataclass
class Sample:
    wall: float
    cpu: float
    peak_mb: float
    code: int


class StubModel:
    """An OpenAI-compatible server on 127.0.0.1 that answers every chat with one JSON text."""

    def __init__(self) -> None:
        from stub_llm import make_handler  # bench/stub_llm.py: the same constant server

        self.answer = "{}"
        handler = make_handler(lambda: self.answer)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[Sample, str, str]:
    """One fresh `python -m agent.cli ARGS` process: its time, CPU, peak memory, output."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=lambda s=s, c=c: c.append(s.read()))
        for s, c in ((child.stdout, out_chunks), (child.stderr, err_chunks))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    sample = Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode)
    return (
        sample,
        b"".join(out_chunks).decode(errors="replace"),
        b"".join(err_chunks).decode(errors="replace"),
    )


def measure(name: str, args: list[str], env: dict[str, str], cwd: Path, repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        sample, out, err = run_once(args, env, cwd)
        if sample.code != 0:
            raise SystemExit(f"{name}: exit {sample.code}\n{out[-2000:]}\n{err[-2000:]}")
        samples.append(sample)
    return {
        "name": name,
        "wall": statistics.median(s.wall for s in samples),
        "cpu": statistics.median(s.cpu for s in samples),
        "peak_mb": max(s.peak_mb for s in samples),
        "runs": len(samples),
    }


def du_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size / 2**20
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total / 2**20


def footprint(env: dict[str, str]) -> list[tuple[str, float | None]]:
    from agent.llm import gguf
    from core.cache import cache_dir

    saved = {k: os.environ.get(k) for k in ("AUTOGLM_CACHE_DIR", "AUTOGLM_MODELS_DIR")}
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        models, cache = gguf.models_dir(), cache_dir()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    entries = sorted(models.iterdir()) if models.is_dir() else []
    return [
        (f"venv ({sys.prefix})", du_mb(Path(sys.prefix))),
        *((f"models: {entry.name}", du_mb(entry)) for entry in entries if entry.suffix != ".lock"),
        (f"saved prompt states ({cache / 'prompt-states'})", du_mb(cache / "prompt-states")),
        (f"processed datasets ({cache / 'datasets'})", du_mb(cache / "datasets")),
    ]


def cold_start(env: dict[str, str], cwd: Path, data_dir: str | None) -> None:
    """One first `autoglm run` in an empty cache: every line it wrote, with its second."""
    with tempfile.TemporaryDirectory(prefix="autoglm-cold-") as empty:
        cold = {**env, "AUTOGLM_CACHE_DIR": empty, "AUTOGLM_MODELS_DIR": f"{empty}/models"}
        args = [sys.executable, "-u", "-m", "agent.cli", "run", RUN_TEXT, "--workspace",
                f"{empty}/ws", *(["--data-dir", data_dir] if data_dir else [])]  # fmt: skip
        started = time.perf_counter()
        child = subprocess.Popen(args, env=cold, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)  # fmt: skip
        print(f"\nfirst start in an empty cache: autoglm run {RUN_TEXT!r}")
        first_useful = None
        for raw in child.stdout:
            line = raw.decode(errors="replace").rstrip()
            second = time.perf_counter() - started
            if first_useful is None and line.startswith("plan 1"):
                first_useful = second
            print(f"  {second:6.1f} s  {line}")
        child.wait()
        total = time.perf_counter() - started
        print(f"  exit {child.returncode}; first useful line (the plan) at "
              f"{first_useful if first_useful is None else round(first_useful, 1)} s; "
              f"done at {total:.1f} s")  # fmt: skip


def print_table(rows: list[dict], baselines: dict[str, dict]) -> None:
    header = f"{'command':<26} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'target':>8}  vs stub"
    print(header)
    print("-" * len(header))
    for row in rows:
        base = baselines.get(row["name"])
        ratio = ""
        if base:
            ratio = (f"wall x{row['wall'] / base['wall']:.1f}, cpu x{row['cpu'] / base['cpu']:.1f}"
                     f", +{row['peak_mb'] - base['peak_mb']:.0f} MB")  # fmt: skip
        key = row["name"].split(" (")[0]
        target = TARGETS_S.get(key)
        shown = f"<= {target:g} s" if target else ""
        print(f"{row['name']:<26} {row['wall']:7.2f} {row['cpu']:7.2f} {row['peak_mb']:8.0f} "
              f"{shown:>8}  {ratio}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time one first start")
    parser.add_argument("--data-dir", default=os.environ.get("AUTOGLM_DATA_DIR"))
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("AUTOGLM_LLM", None)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs); {args.repeats} fresh processes per command")  # fmt: skip
    stub = StubModel()
    rows: list[dict] = []
    baselines: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="autoglm-bench-") as work:
        cwd = Path(work)
        ws = ["--workspace", str(cwd / "ws")]
        data = ["--data-dir", args.data_dir] if args.data_dir else []
        run_once(["run", RUN_TEXT, *ws, *data], env, cwd)  # prepares the model, fills the store
        rows.append(measure("--help", ["--help"], env, cwd, args.repeats))
        rows.append(measure("datasets", ["datasets"], env, cwd, args.repeats))
        rows.append(measure("experiments list", ["experiments", "list", *ws], env, cwd,
                            args.repeats))  # fmt: skip
        stub_env = {**env, "AUTOGLM_LLM": stub.url}
        stub.answer = json.dumps(STUB_ANSWERS["plan"])
        plan_stub = measure("plan (stub model)", ["plan", PLAN_TEXT, "--json"], stub_env, cwd,
                            args.repeats)  # fmt: skip
        plan = measure("plan", ["plan", PLAN_TEXT, "--json"], env, cwd, args.repeats)
        stub.answer = json.dumps(STUB_ANSWERS["run"])
        run_stub = measure("run (stub model)", ["run", RUN_TEXT, *ws, *data], stub_env, cwd,
                           args.repeats)  # fmt: skip
        run = measure("run", ["run", RUN_TEXT, *ws, *data], env, cwd, args.repeats)
        rows += [plan, plan_stub, run, run_stub]
        baselines = {"plan": plan_stub, "run": run_stub}
    stub.close()
    print()
    print_table(rows, baselines)
    print(f"\nplan peak memory target: <= {TARGET_PLAN_MB} MB; measured {plan['peak_mb']:.0f} MB")
    print("\non disk:")
    for what, size in footprint(env):
        print(f"  {'-' if size is None else f'{size:8.0f} MB'}  {what}")
    if args.cold:
        cold_start(env, ROOT, args.data_dir)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "loadavg": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
