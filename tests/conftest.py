"""Shared test fixtures.

- `--run-slow` runs tests marked `slow` (real model loads, servers); CI passes it.
- `data_dir`: the raw reference datasets (AUTOGLM_DATA_DIR, else ../shared/datasets).
- `embedded_backend`: the embedded planner model, loaded once per session.
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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Processed datasets and converted models go to one session-wide temp cache."""
    cache = os.environ.get("AUTOGLM_TEST_CACHE")
    if cache is None:
        cache = str(tmp_path_factory.getbasetemp() / "autoglm-cache")
        os.environ["AUTOGLM_TEST_CACHE"] = cache
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", cache)


@pytest.fixture(scope="session")
def embedded_backend():
    """The embedded model (Qwen2.5-Coder-0.5B GGUF) through the transformers backend, once."""
    from agent.llm.embedded import load_embedded_backend

    return load_embedded_backend()
