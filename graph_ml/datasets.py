"""Loading catalogue datasets: one `load_dataset` for every `DatasetSpec` in `graph_ml.catalogue`.

Where files come from, in order:

1. The data directory (`--data-dir` > `AUTOGLM_DATA_DIR` > the user cache), laid out as PyG
   expects: `<data_dir>/<Folder>/raw/<files>`. Files found there are used as they are and never
   written to, because CI points at a shared read-only copy.
2. The processing cache (`AUTOGLM_CACHE_DIR`/datasets, default the user cache): raw files are
   linked (or copied) into `<cache>/datasets/<Folder>/raw` and PyG writes `processed/` there.
3. Online, PyG downloads into the cache as usual. Offline with no files, `load_dataset` raises a
   `SetupError` naming every file and the directory to put it in. `AUTOGLM_OFFLINE=1` skips
   the download attempt altogether.

No pickle from those directories runs. Planetoid's raw files are Python pickles and PyG's
processed files torch pickles it may load with `weights_only=False`, so: raw files are
checked against the catalogue's `raw_sha256` just before PyG reads them (a dataset without
known hashes is read with a note saying so); processed files live in a cache directory only
this user may use (mode 0700), with their sha256 recorded when written
(`processed/SHA256SUMS.json`) and checked before PyG opens them; a file that differs, or
has no recorded hash, is rebuilt from the verified raw files, with a note on stderr.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.error import URLError

import torch
from torch_geometric.data import Data, HeteroData

from core.cache import cache_dir
from core.errors import SetupError, UserInputError
from graph_ml.catalogue import (  # noqa: F401 - re-exported: the catalogue owns dataset facts
    DATASETS,
    GRAPH_TASKS,
    NODE_TASKS,
    DatasetSpec,
    Task,
)
from graph_ml.data_dir import (  # noqa: F401 - re-exported; torch-free for `autoglm datasets`
    available_offline,
    resolve_data_dir,
)
from graph_ml.data_dir import missing_files as _missing_files


@dataclass
class LoadedDataset:
    """A dataset ready for training.

    Attributes:
        spec: its catalogue entry (a `source="csv"` spec for imported graphs).
        graphs: one element for node-level datasets, one per graph for graph-level ones.
        target_node_type: for a `HeteroData` import, the node type that carries labels.
        class_names: label names by class index, where the source has them (CSV imports).
        node_ids: the source's node ids by node index, per node type ("node" if homogeneous).
        edge_type_names: names of the `edge_type` values of a CSV import with a type column.
        sources: for imported graphs, each file read -> its sha256 (what a rerun compares).
    """

    spec: DatasetSpec
    graphs: list[Data | HeteroData]
    target_node_type: str | None = None
    class_names: list[str] | None = None
    node_ids: dict[str, list[str]] | None = field(default=None, repr=False)
    edge_type_names: list[str] | None = None
    sources: dict[str, str] | None = None

    @property
    def data(self) -> Data | HeteroData:
        return self.graphs[0]

    @property
    def is_hetero(self) -> bool:
        return isinstance(self.data, HeteroData)

    def _store(self, graph: Data | HeteroData):
        if isinstance(graph, HeteroData):
            node_type = self.target_node_type or graph.node_types[0]
            return graph[node_type]
        return graph

    @property
    def num_features(self) -> int:
        x = self._store(self.data).get("x")
        return 0 if x is None else int(x.size(-1)) if x.dim() > 1 else 1

    @property
    def num_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        labels = [self._store(g).get("y") for g in self.graphs]
        labels = [y for y in labels if y is not None and y.numel() > 0]
        if not labels:
            return 0
        return int(max(int(y.max()) for y in labels)) + 1

    @property
    def num_nodes(self) -> int:
        return sum(int(g.num_nodes) for g in self.graphs)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex of every tensor (key, dtype, shape, bytes); stable across loads."""
        digest = hashlib.sha256()
        for index, graph in enumerate(self.graphs):
            digest.update(f"graph:{index}".encode())
            for store in graph.stores:
                prefix = getattr(store, "_key", None) or ""
                for key in sorted(store.keys()):
                    value = store[key]
                    if not isinstance(value, torch.Tensor):
                        continue
                    tensor = value.detach().cpu().contiguous()
                    digest.update(f"{prefix}/{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                    digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


PROCESSED_MANIFEST = "SHA256SUMS.json"  # beside the processed files: name -> sha256 hex
_HASH_CHUNK = 1 << 20


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_raw(spec: DatasetSpec, folder: Path) -> None:
    """Check the raw files under `folder` (`<root>/<Folder>`) against the catalogue's
    hashes; called just before PyG reads them.

    Raises:
        SetupError: a file is not the one the catalogue knows; nothing was read.
    """
    if not spec.raw_sha256:
        _note(
            f"the raw files of {spec.name} in {folder} are not verified: the catalogue knows "
            "no sha256 for them. PyG reads some raw formats with pickle, which can run code; "
            "use files from a source you trust."
        )
        return
    for rel, expected in spec.raw_sha256.items():
        path = folder / rel
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected:
            shown = path.resolve() if path.is_symlink() else path
            raise SetupError(
                f"The raw file {shown} of dataset {spec.name!r} is not the one the catalogue "
                f"knows (sha256 {actual}, expected {expected}), so nothing was loaded: it "
                "would be unpickled, and a pickle can run code. Replace it with the original "
                f"from {spec.homepage or 'the dataset homepage'}, or delete it to download "
                "it again."
            )


def _processed_dir(work_root: Path, spec: DatasetSpec) -> Path:
    return work_root / spec.folder / "processed"


def _processed_files(processed: Path) -> dict[str, Path]:
    return {
        path.relative_to(processed).as_posix(): path
        for path in sorted(processed.rglob("*"))
        if path.is_file() and path.name != PROCESSED_MANIFEST
    }


def _check_processed(spec: DatasetSpec, processed: Path) -> None:
    """Remove processed files whose hash was not recorded when we wrote them, or differs;
    PyG then rebuilds them from the (verified) raw files."""
    if not processed.is_dir():
        return
    files = _processed_files(processed)
    try:
        recorded = json.loads((processed / PROCESSED_MANIFEST).read_text())
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        reason = "no hash was recorded when they were written"
    elif set(recorded) != set(files):
        reason = "they are not the files that were written"
    else:
        changed = [name for name, path in files.items() if _sha256(path) != recorded[name]]
        if not changed:
            return
        reason = f"{', '.join(changed)} changed since it was written"
    _note(f"rebuilding the processed files of {spec.name} in {processed}: {reason}.")
    shutil.rmtree(processed)


def _record_processed(processed: Path) -> None:
    hashes = {name: _sha256(path) for name, path in _processed_files(processed).items()}
    partial = processed / (PROCESSED_MANIFEST + ".partial")
    partial.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    partial.replace(processed / PROCESSED_MANIFEST)


def _private_dir(path: Path) -> Path:
    """`path`, created if needed, writable (and readable) by this user alone.

    Raises:
        SetupError: it belongs to another user.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SetupError(
            f"The dataset cache {path} belongs to another user (uid {info.st_uid}), who could "
            "plant files in it that PyG would unpickle. Set AUTOGLM_CACHE_DIR to a directory "
            "of your own."
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def _verifying(base: type, spec: DatasetSpec) -> type:
    """`base` (a PyG dataset class) that verifies the raw files before it processes them:
    staged from the data dir or just downloaded, PyG reads raw files only there."""

    def process(self) -> None:
        verify_raw(spec, Path(self.raw_dir).parent)
        base.process(self)

    return type(base.__name__, (base,), {"process": process})


def _stage_raw(spec: DatasetSpec, data_dir: Path) -> Path:
    """Return the root PyG should use, with the raw files linked from `data_dir` if present.

    The data dir may be read-only, so PyG always works under the cache; raw files are
    symlinked (copied where links are not allowed), never moved or modified.
    """
    work_root = _private_dir(cache_dir() / "datasets")
    if _missing_files(spec, data_dir):
        return work_root  # nothing to stage: reuse an earlier download or download now
    for rel in spec.raw_files:
        source = (data_dir / spec.folder / rel).resolve()
        target = work_root / spec.folder / rel
        if target.exists() and target.resolve() == source:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        try:
            target.symlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    return work_root


def missing_files_message(spec: DatasetSpec, data_dir: Path) -> str:
    """'put a, b in DIR; c in DIR2' for the files of `spec` that `data_dir` lacks."""
    by_dir: dict[Path, list[str]] = {}
    for rel in _missing_files(spec, data_dir) or spec.raw_files:
        path = data_dir / spec.folder / rel
        by_dir.setdefault(path.parent, []).append(path.name)
    return "; ".join(f"put {', '.join(names)} in {where}" for where, names in by_dir.items())


def _offline_error(spec: DatasetSpec, data_dir: Path, cause: BaseException) -> SetupError:
    return SetupError(
        f"Dataset {spec.name!r} is not in the data directory {data_dir} and could not be "
        f"downloaded ({type(cause).__name__}: {cause}). To use it offline, "
        f"{missing_files_message(spec, data_dir)} "
        f"(from {spec.homepage or 'the dataset homepage'}), or point --data-dir / "
        "AUTOGLM_DATA_DIR at a directory that has them, then run the command again."
    )


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: urllib's errors, and aiohttp's where PyG uses it."""
    errors: tuple[type[BaseException], ...] = (URLError, ConnectionError, TimeoutError, OSError)
    try:
        import aiohttp
    except ImportError:
        return errors
    return (*errors, aiohttp.ClientError)


_DOWNLOAD_ERRORS = _download_errors()


def offline_mode() -> bool:
    """`AUTOGLM_OFFLINE=1` (or HF_HUB_OFFLINE=1): never try a download, fail fast instead."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes")
        for var in ("AUTOGLM_OFFLINE", "HF_HUB_OFFLINE")
    )


@contextmanager
def _cache_lock(spec: DatasetSpec) -> Iterator[None]:
    """Hold an exclusive lock on the dataset's cache entry (POSIX), so that two processes
    never process into, or read a half-written file from, the same cache directory."""
    root = _private_dir(cache_dir() / "datasets")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent first loads are rare there
        yield
        return
    with open(root / f".{spec.folder}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What PyG prints while it downloads and processes a dataset; our own note says it instead.
_PYG_PROGRESS = ("Processing...", "Done!", "Downloading ", "Extracting ")


def _echo_unless_pyg_progress(text: str) -> None:
    """Pass on what was printed while PyG built a dataset, less PyG's progress lines."""
    for line in text.splitlines():
        if line.strip() and not line.startswith(_PYG_PROGRESS):
            print(line, file=sys.stderr, flush=True)


def _with_download(spec: DatasetSpec, data_dir: Path, build: Callable[[Path], object]):
    with _cache_lock(spec):
        root = _stage_raw(spec, data_dir)
        if offline_mode() and _missing_files(spec, root):
            cause = ConnectionError("offline mode (AUTOGLM_OFFLINE)")
            raise _offline_error(spec, data_dir, cause)
        processed = _processed_dir(root, spec)
        _check_processed(spec, processed)
        if not processed.is_dir():
            _note(f"preparing {spec.name} once (read from its raw files, then cached)")
        said = io.StringIO()
        try:
            with redirect_stderr(said):
                dataset = build(root)
        except _DOWNLOAD_ERRORS as error:
            if _missing_files(spec, root):
                raise _offline_error(spec, data_dir, error) from error
            raise
        finally:
            _echo_unless_pyg_progress(said.getvalue())
        if processed.is_dir() and not (processed / PROCESSED_MANIFEST).is_file():
            _record_processed(processed)  # written just now, by PyG
        return dataset


def _load_planetoid(spec: DatasetSpec, data_dir: Path) -> list[Data]:
    from torch_geometric.datasets import Planetoid

    planetoid = _verifying(Planetoid, spec)
    dataset = _with_download(spec, data_dir, lambda root: planetoid(str(root), spec.pyg_name))
    return [dataset[0]]


def _load_tu(spec: DatasetSpec, data_dir: Path) -> list[Data]:
    from torch_geometric.datasets import TUDataset

    tu = _verifying(TUDataset, spec)
    dataset = _with_download(spec, data_dir, lambda root: tu(str(root), spec.pyg_name))
    graphs = [dataset[i] for i in range(len(dataset))]
    if graphs and graphs[0].get("x") is None:
        graphs = _one_hot_degree(graphs)
    return graphs


def _one_hot_degree(graphs: list[Data]) -> list[Data]:
    """Featureless graphs (IMDB-BINARY) get one-hot node degrees, the usual GIN input."""
    from torch_geometric.utils import degree

    degrees = [degree(g.edge_index[0], g.num_nodes, dtype=torch.long) for g in graphs]
    max_degree = max(int(d.max()) if d.numel() else 0 for d in degrees)
    for graph, deg in zip(graphs, degrees, strict=True):
        graph.x = torch.nn.functional.one_hot(deg, max_degree + 1).float()
    return graphs


def _load_karate(spec: DatasetSpec, data_dir: Path) -> list[Data]:
    from torch_geometric.datasets import KarateClub

    return [KarateClub()[0]]


def _load_ogb(spec: DatasetSpec, data_dir: Path) -> list[Data]:
    try:
        from ogb.nodeproppred import PygNodePropPredDataset
    except ImportError as error:
        raise SetupError(
            f"Dataset {spec.name!r} needs the optional 'ogb' package: "
            "pip install 'open-autoglm[ogb]' (or pip install ogb), then run the command again."
        ) from error
    partial = cache_dir() / "datasets" / spec.folder
    if partial.is_dir() and not (partial / spec.raw_files[0]).exists():
        # An interrupted download in our cache: ogb would stop and ask on stdin about it.
        shutil.rmtree(partial)
    ogb = _verifying(PygNodePropPredDataset, spec)
    dataset = _with_download(spec, data_dir, lambda root: ogb(spec.name, root=str(root)))
    data = dataset[0]
    data.y = data.y.view(-1)
    index = dataset.get_idx_split()
    for split, name in (("train", "train"), ("valid", "val"), ("test", "test")):
        mask = torch.zeros(data.num_nodes, dtype=torch.bool)
        mask[index[split]] = True
        data[f"{name}_mask"] = mask
    return [data]


def make_sbm(
    block_sizes: tuple[int, ...] = (100, 100, 100, 100),
    p_in: float = 0.08,
    p_out: float = 0.005,
    num_features: int = 16,
    feature_noise: float = 2.0,
    seed: int = 0,
) -> Data:
    """A stochastic block model graph with block labels and noisy class-centred features.

    Deterministic under `seed` (its own `torch.Generator`; the global RNG is not touched).
    Undirected, no self-loops; `y` is the block index.
    """
    if not block_sizes or min(block_sizes) < 1:
        raise UserInputError(f"SBM block sizes must be positive, got {block_sizes}.")
    if not (0.0 <= p_out <= 1.0 and 0.0 <= p_in <= 1.0):
        raise UserInputError(f"SBM probabilities must be in [0, 1], got {p_in=}, {p_out=}.")
    gen = torch.Generator().manual_seed(seed)
    y = torch.repeat_interleave(torch.arange(len(block_sizes)), torch.tensor(block_sizes))
    n = int(y.numel())
    probs = torch.full((n, n), p_out)
    probs[y.view(-1, 1) == y.view(1, -1)] = p_in
    upper = torch.triu(torch.rand(n, n, generator=gen) < probs, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    order = torch.argsort(edge_index[0] * n + edge_index[1])
    centres = torch.randn(len(block_sizes), num_features, generator=gen)
    x = centres[y] + feature_noise * torch.randn(n, num_features, generator=gen)
    return Data(x=x, edge_index=edge_index[:, order], y=y, num_nodes=n)


def _load_sbm(spec: DatasetSpec, data_dir: Path) -> list[Data]:
    return [make_sbm()]


_LOADERS: dict[str, Callable[[DatasetSpec, Path], list]] = {
    "planetoid": _load_planetoid,
    "tu": _load_tu,
    "karate": _load_karate,
    "synthetic": _load_sbm,
    "ogb": _load_ogb,
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> LoadedDataset:
    """Load a catalogue dataset by name or alias.

    Args:
        name: a catalogue name ("cora", "MUTAG", "imdb_binary", ...).
        data_dir: directory with `<Folder>/raw/` files; default `resolve_data_dir()`.

    Raises:
        UserInputError: unknown name (the message lists the catalogue).
        SetupError: the files are missing and cannot be downloaded, or an extra is missing.
    """
    spec = DATASETS.get(name)
    if spec.source == "csv":
        raise UserInputError(f"{name!r} is an imported graph; load it with load_csv_graph().")
    graphs = _LOADERS[spec.source](spec, resolve_data_dir(data_dir))
    return LoadedDataset(spec=spec, graphs=graphs)
