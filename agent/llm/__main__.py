"""Measure a backend: load time, memory, decoding speed, and planner-sized prompt latency.

    python -m agent.llm [--backend embedded] [--threads 1] [--cold] [--prompt-tokens 1500]

`--cold` points AUTOGLM_CACHE_DIR and AUTOGLM_MODELS_DIR at a fresh temporary directory
first, so the embedded model is assembled and verified from scratch (the first start a user
sees).
Prints one table; numbers come from this run, nothing is typed in.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time

SCHEMA = {
    "type": "object",
    "properties": {
        "actions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["train", "tune", "compare", "inspect"]},
                    "dataset": {"type": "string", "enum": ["cora", "citeseer", "mutag"]},
                    "model": {"type": "string", "enum": ["gcn", "gat", "sage", "gin", "mlp"]},
                    "epochs": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
                "required": ["action"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["actions"],
    "additionalProperties": False,
}
TASKS = [
    "train a GCN on Cora for 50 epochs",
    "compare GAT and GraphSAGE on CiteSeer",
    "在 MUTAG 上训练 GIN",
    "inspect the cora dataset",
    "tune a gat on citeseer",
]
FILLER = (
    "Datasets: cora (citation graph, node classification), citeseer (citation graph), "
    "mutag (molecules, graph classification). Models: gcn, gat (graph attention network), "
    "sage (GraphSAGE), gin, mlp. Only write fields the user stated. "
)


def count_tokens(backend, text: str) -> int:
    if hasattr(backend, "tokenize"):  # llama.cpp
        return len(backend.tokenize(text.encode()))
    return len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])


def system_prompt(backend, target_tokens: int) -> str:
    text = "You turn graph-learning requests into JSON actions.\n"
    while count_tokens(backend, text) < target_tokens:
        text += FILLER
    return text


def set_prefix_cache(backend, enabled: bool) -> None:
    """Turn reuse of the prompt's KV cache (and, on llama.cpp, its saved state) on or off."""
    if hasattr(backend, "save_state"):  # llama.cpp: forget what is cached, save nothing
        backend.save_state = enabled
        backend._forget_from(0)
    else:
        backend.prefix_cache_enabled = enabled


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(args: argparse.Namespace) -> list[tuple[str, str]]:
    from agent.llm import get_backend

    rows: list[tuple[str, str]] = []
    started = time.perf_counter()
    backend = get_backend(args.backend, threads=args.threads)
    getattr(backend, "wait_loaded", lambda: None)()  # llama.cpp loads on a background thread
    rows.append(("load (this start)", f"{time.perf_counter() - started:.1f} s"))
    rows.append(("RSS after load", f"{rss_mib():.0f} MiB"))
    if args.cold:
        backend.close()
        del backend
        started = time.perf_counter()
        backend = get_backend(args.backend, threads=args.threads)
        getattr(backend, "wait_loaded", lambda: None)()
        rows.append(("load (cached, same process)", f"{time.perf_counter() - started:.1f} s"))
    system = system_prompt(backend, args.prompt_tokens)

    def ask(task: str, schema=SCHEMA, max_tokens: int = 64):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        return backend.complete(messages, json_schema=schema, max_tokens=max_tokens)

    set_prefix_cache(backend, False)
    cold = ask(TASKS[0])
    rows.append((f"{cold.prompt_tokens}-token prompt, no prefix cache", f"{cold.seconds:.1f} s"))
    set_prefix_cache(backend, True)
    ask(TASKS[0])  # fills the cache
    warm = [ask(task) for task in TASKS[1:]]
    latencies = [completion.seconds for completion in warm]
    rows.append(("same, prefix cached (median)", f"{statistics.median(latencies):.2f} s"))
    tokens = sum(completion.completion_tokens for completion in warm)
    rows.append(
        ("completion tokens (median)", f"{statistics.median(c.completion_tokens for c in warm)}")
    )
    rows.append(
        ("constrained tokens/s (incl. user-turn prefill)", f"{tokens / sum(latencies):.1f}")
    )
    free = ask("Describe the cora dataset in one paragraph.", schema=None, max_tokens=48)
    rows.append(("free decoding tokens/s", f"{free.completion_tokens / free.seconds:.1f}"))
    rows.append(
        ("peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    )
    for task, completion in zip(TASKS[1:], warm, strict=True):
        print(f"  {task!r} -> {completion.text}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m agent.llm", description=__doc__)
    parser.add_argument("--backend", default=None, help="as for get_backend (default embedded)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="start from an empty cache")
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    args = parser.parse_args()
    cold_cache = tempfile.mkdtemp(prefix="autoglm-cold-") if args.cold else None
    if cold_cache:
        os.environ["AUTOGLM_CACHE_DIR"] = cold_cache
        os.environ["AUTOGLM_MODELS_DIR"] = os.path.join(cold_cache, "models")
    try:
        rows = measure(args)
    finally:
        if cold_cache:
            shutil.rmtree(cold_cache, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"backend={args.backend or 'embedded'} threads={args.threads}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
