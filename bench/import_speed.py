"""How fast, and in how much memory, does a user's CSV graph import?

Writes a synthetic graph (default 100k nodes with 16 float features and a label, 1M random
edges given once each, integer ids), then imports it with `graph_ml.importer.load_graph`,
each time in a fresh process, and prints beside the files' size: the time of the call, the
whole process's peak resident memory (torch alone is ~400 MiB of it), and the peak above
what the process held just before the call, measured two ways: "cold" (torch and pyarrow
imported, nothing read yet: includes the one-off cost of the library code and kernels the
first read touches) and "warm" (after importing a 2-node graph first: only what grows with
the data). Targets: <= 3 s, and <= 3x the files' size above a warm start.

`--baseline COMMIT` also times the importer of that commit (the csv-module loop it
replaced, d7771b9 by default) on the same files in the same run. `--weighted` adds a weight
and a type column to the edges (the slower, order-keeping dedupe).

    OMP_NUM_THREADS=1 python bench/import_speed.py [--nodes 100000 --edges 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS, TARGET_MEMORY = 3.0, 3.0
OLD_COMMIT = "d7771b9"  # the last commit with the csv-module importer


def write_graph(folder: Path, nodes: int, edges: int, features: int, weighted: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((nodes, features))
    labels = rng.integers(0, 7, nodes)
    with (folder / "nodes.csv").open("w") as handle:
        handle.write(",".join(["id", *(f"f{i}" for i in range(features)), "label"]) + "\n")
        for start in range(0, nodes, 10_000):
            block = x[start : start + 10_000]
            for offset, row in enumerate(block):
                i = start + offset
                handle.write(f"{i}," + ",".join(f"{v:.4f}" for v in row) + f",{labels[i]}\n")
    src, dst = rng.integers(0, nodes, edges), rng.integers(0, nodes, edges)
    weights = rng.random(edges)
    kinds = np.array(["cites", "likes"])[rng.integers(0, 2, edges)]
    with (folder / "edges.csv").open("w") as handle:
        handle.write("src,dst,weight,type\n" if weighted else "src,dst\n")
        for i in range(edges):
            extra = f",{weights[i]:.3f},{kinds[i]}" if weighted else ""
            handle.write(f"{src[i]},{dst[i]}{extra}\n")


CHILD = r"""
import gc, json, resource, sys, time
import psutil, torch, pyarrow
sys.path.insert(0, {root!r})
{load}
if {warm}:
    load({tiny!r})
gc.collect()
before = psutil.Process().memory_info().rss
start = time.perf_counter()
ds = load({folder!r})
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(seconds=seconds, peak=peak, above=peak - before,
                      nodes=int(ds.data.num_nodes), edges=int(ds.data.edge_index.size(1)))))
"""
NEW = "from graph_ml.importer import load_graph as load"
OLD = """
import importlib.util
spec = importlib.util.spec_from_file_location("old_importer", {path!r})
old = importlib.util.module_from_spec(spec); sys.modules["old_importer"] = old
spec.loader.exec_module(old)
def load(folder):
    return old.load_csv_graph(folder + "/nodes.csv", folder + "/edges.csv")
"""


def measure(folder: Path, load: str, warm: bool) -> dict:
    tiny = folder / "tiny"
    code = CHILD.format(root=str(ROOT), load=load, folder=str(folder), warm=warm, tiny=str(tiny))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--weighted", action="store_true")
    parser.add_argument("--baseline", default=OLD_COMMIT, help="commit to compare ('' for none)")
    parser.add_argument("--repeats", type=int, default=3, help="fastest of N runs counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_graph(folder, args.nodes, args.edges, args.features, args.weighted)
        size = sum(p.stat().st_size for p in folder.glob("*.csv"))
        (folder / "tiny").mkdir()
        (folder / "tiny" / "nodes.csv").write_text("id,f0,label\n0,0.5,1\n1,0.25,0\n")
        (folder / "tiny" / "edges.csv").write_text("src,dst\n0,1\n")
        loaders = {"pyarrow (this tree)": NEW}
        if args.baseline:
            old = folder / "old_importer.py"
            show = ["git", "-C", str(ROOT), "show", f"{args.baseline}:graph_ml/importer.py"]
            old.write_text(subprocess.run(show, capture_output=True, text=True, check=True).stdout)
            loaders[f"csv loop ({args.baseline})"] = OLD.format(path=str(old))
        mb = 1 << 20
        print(f"files: nodes.csv + edges.csv = {size / mb:.1f} MiB; {args.nodes} nodes, "
              f"{args.edges} edges{' (weight, type)' if args.weighted else ''}")  # fmt: skip
        print("| importer | seconds | peak RSS (MiB) | above cold start (MiB, x files) | "
              "above warm start (MiB, x files) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|")
        for label, load in loaders.items():
            cold = [measure(folder, load, False) for _ in range(args.repeats)]
            warm = [measure(folder, load, True) for _ in range(args.repeats)]
            best = min(cold + warm, key=lambda r: r["seconds"])
            above_cold, above_warm = (min(r["above"] for r in runs) for runs in (cold, warm))
            print(f"| {label} | {best['seconds']:.2f} | {min(r['peak'] for r in cold) / mb:.0f} "
                  f"| {above_cold / mb:.0f} ({above_cold / size:.2f}x) "
                  f"| {above_warm / mb:.0f} ({above_warm / size:.2f}x) |")  # fmt: skip
        print(f"targets: <= {TARGET_SECONDS:g} s; <= {TARGET_MEMORY:g}x the files' size above a "
              "warm start")  # fmt: skip


if __name__ == "__main__":
    main()
