"""Shared test fixtures.

- `--run-slow` runs tests marked `slow` (real model loads, servers); CI passes it.
- `data_dir`: the raw reference datasets (AUTOGLM_DATA_DIR, else ../shared/datasets).
- `embedded_backend`: the embedded planner model on llama.cpp, loaded once per session.
- Models: one copy. When the user has prepared the embedded model (`~/.cache/open-autoglm/
  models`), every test and every `autoglm` subprocess uses that file (AUTOGLM_MODELS_DIR);
  otherwise one shared temporary copy is assembled, once per session. Everything else that
  is cached (datasets, saved prompt states) goes to the session's temporary cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Torch with 2 threads on these shared cores was measured 5-100x slower than with one.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow to run it (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory with Cora/, CiteSeer/, MUTAG/ raw files (may be read-only)."""
    # Absolute, so subprocesses started in another working directory find it too.
    path = Path(os.environ.get("AUTOGLM_DATA_DIR", ROOT.parent / "shared" / "datasets")).resolve()
    if not (path / "Cora" / "raw").is_dir():
        pytest.skip(f"reference datasets not found at {path}; set AUTOGLM_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A command run without --workspace writes to a temp workspace, never the checkout's."""
    monkeypatch.setenv("AUTOGLM_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))


def _user_models_dir() -> Path | None:
    """The user's prepared models directory, when it holds the embedded model's GGUF."""
    from agent.llm import embedded
    from core.cache import cache_dir

    models = cache_dir() / "models"  # called before any test sets AUTOGLM_CACHE_DIR
    spec = embedded.embedded_spec()
    return models if (models / f"{spec.name}-{spec.sha256[:12]}.gguf").is_file() else None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """One session-wide temp cache; the user's prepared model (else one temp copy of it)."""
    cache = os.environ.get("AUTOGLM_TEST_CACHE")
    if cache is None:
        cache = str(tmp_path_factory.getbasetemp() / "autoglm-cache")
        os.environ["AUTOGLM_TEST_CACHE"] = cache
        if "AUTOGLM_MODELS_DIR" not in os.environ:
            user_models = _user_models_dir()
            os.environ["AUTOGLM_MODELS_DIR"] = str(user_models or Path(cache) / "models")
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", cache)


@pytest.fixture(scope="session")
def embedded_backend():
    """The embedded model (Qwen2.5-Coder-0.5B GGUF) on llama.cpp, once per session."""
    from agent.llm.embedded import load_embedded_backend

    return load_embedded_backend()
