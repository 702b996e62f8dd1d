"""Import PyTorch Geometric without its optional Hugging Face glue.

`torch_geometric.datasets` imports `torch_geometric.llm`, which imports `transformers` (about
0.5-0.9 s of CPU here) only to name a type (`BatchEncoding`, `PreTrainedTokenizerBase`) for
its LLM/RAG datasets, which open-autoglm never uses. PyG guards those imports with
`except ImportError`, so we hide `transformers` while PyG is first imported, then unhide it:
a later `import transformers` (the transformers planner backend) works as usual. When
`transformers` is already loaded, nothing is hidden.

Every module of `graph_ml` that imports PyG imports this module first.
"""

from __future__ import annotations

import sys


def _import_pyg() -> None:
    if "torch_geometric" in sys.modules:
        return
    hide = "transformers" not in sys.modules
    if hide:
        sys.modules["transformers"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        import torch_geometric  # noqa: F401
    finally:
        if hide and sys.modules.get("transformers", 0) is None:
            del sys.modules["transformers"]


_import_pyg()
