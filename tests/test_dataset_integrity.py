"""Pickles from the data and cache directories never run (issue 10, case 3).

Planetoid's raw files are Python pickles and PyG's processed files are torch pickles that
PyG falls back to loading with `weights_only=False`. Each test plants a real payload (a
pickle whose unpickling creates a marker file) where a shared data directory or a copied
cache could hold it, and checks that the marker never appears.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.errors import SetupError
from graph_ml import datasets
from graph_ml.catalogue import DATASETS


class Payload:
    """Unpickling this opens (creates) `marker`: harmless proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh processing cache, so PyG reads raw files and writes processed ones."""
    path = tmp_path / "cache"
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(path))
    return path


def copy_cora(data_dir: Path, target: Path) -> Path:
    shutil.copytree(data_dir / "Cora", target / "Cora")
    return target


def test_a_planted_raw_pickle_is_refused_unread(tmp_path, data_dir, cache):
    planted = copy_cora(data_dir, tmp_path / "data")
    marker = tmp_path / "raw-payload-ran"
    (planted / "Cora" / "raw" / "ind.cora.x").write_bytes(
        __import__("pickle").dumps(Payload(marker))
    )
    with pytest.raises(SetupError) as caught:
        datasets.load_dataset("cora", planted)
    assert not marker.exists(), "the planted raw pickle was unpickled"
    message = str(caught.value)
    assert "ind.cora.x" in message and "sha256" in message and "nothing was loaded" in message


@pytest.mark.parametrize("name", ["data.pt", "pre_transform.pt"])
def test_a_planted_processed_pickle_is_rebuilt_not_loaded(tmp_path, data_dir, cache, name, capsys):
    first = datasets.load_dataset("cora", data_dir)
    processed = cache / "datasets" / "Cora" / "processed"
    assert (processed / name).is_file()
    marker = tmp_path / "processed-payload-ran"
    torch.save(Payload(marker), processed / name)
    capsys.readouterr()
    again = datasets.load_dataset("cora", data_dir)
    assert not marker.exists(), "the planted processed pickle was unpickled"
    assert "rebuilding" in capsys.readouterr().err  # said, not silent
    assert again.fingerprint == first.fingerprint  # rebuilt from the verified raw files
    capsys.readouterr()
    datasets.load_dataset("cora", data_dir)  # the rebuilt files carry their hashes: no note
    assert "rebuilding" not in capsys.readouterr().err


def test_processed_files_without_recorded_hashes_are_rebuilt(tmp_path, data_dir, cache, capsys):
    datasets.load_dataset("cora", data_dir)
    processed = cache / "datasets" / "Cora" / "processed"
    (processed / datasets.PROCESSED_MANIFEST).unlink()  # as a cache from elsewhere comes
    capsys.readouterr()
    datasets.load_dataset("cora", data_dir)
    assert "no hash was recorded" in capsys.readouterr().err


def test_the_processing_cache_is_ours_alone(data_dir, cache):
    datasets.load_dataset("cora", data_dir)
    assert (cache / "datasets").stat().st_mode & 0o077 == 0  # no one else may write (or read)


@pytest.mark.parametrize("name", ["cora", "citeseer", "mutag"])
def test_the_catalogue_knows_each_reference_file(data_dir, name):
    spec = DATASETS.get(name)
    assert set(spec.raw_sha256) == set(spec.raw_files)
    for rel, expected in spec.raw_sha256.items():
        path = data_dir / spec.folder / rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, path


def test_datasets_without_known_hashes_say_their_files_are_not_verified(data_dir, cache, capsys):
    spec = replace(DATASETS.get("cora"), raw_sha256={})
    datasets._load_planetoid(spec, data_dir)
    err = capsys.readouterr().err
    assert "cora" in err and "not verified" in err


def test_a_first_load_says_what_it_does_and_pyg_progress_is_not_printed(data_dir, cache, capsys):
    datasets.load_dataset("cora", data_dir)
    first = capsys.readouterr().err
    assert "preparing cora once" in first
    datasets.load_dataset("cora", data_dir)
    assert "preparing" not in capsys.readouterr().err  # cached: nothing to say
    # PyG prints nothing under pytest, so its lines are fed to the filter directly.
    datasets._echo_unless_pyg_progress("Processing...\nDone!\nnote: ours\nDownloading https://x\n")
    assert capsys.readouterr().err == "note: ours\n"
