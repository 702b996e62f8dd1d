"""Model plug-ins: `examples/plugin_model.py` registers `mygcn`, and every command knows it
with no project file changed (issue 8). Each test is a fresh `autoglm` process, as a user
runs it, with `AUTOGLM_PLUGINS` naming the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def autoglm(*args: str, cwd: Path, plugins: str = "examples.plugin_model", path: str = "",
            timeout: float = 600) -> subprocess.CompletedProcess:  # fmt: skip
    env = {
        **os.environ,
        "AUTOGLM_PLUGINS": plugins,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_the_plugin_model_is_in_the_catalogue(tmp_path: Path) -> None:
    done = autoglm("models", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    mygcn = next(m for m in json.loads(done.stdout)["models"] if m["name"] == "mygcn")
    assert mygcn["tasks"] == ["node_classification", "link_prediction", "graph_classification"]
    assert mygcn["exportable"] and "lr" in mygcn["searched"]


def test_train_then_export_the_plugin_model(tmp_path: Path, data_dir: Path) -> None:
    ws = str(tmp_path / "ws")
    done = autoglm("train", "--dataset", "karate", "--model", "mygcn", "--epochs", "5",
                   "--workspace", ws, "--json", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["config"]["model"] == "mygcn" and len(result["runs"]) == 1
    script = tmp_path / "reproduce.py"
    done = autoglm("experiments", "export", str(result["run_id"]), "--workspace", ws,
                   "-o", str(script), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert "class ResidualGCNConv" in text and "graph_ml" not in text
    # The script stands alone: no plug-in, no project on the path.
    env = {**os.environ, "PYTHONPATH": "", "AUTOGLM_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    ran = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(data_dir), "--cache-dir",
         str(tmp_path / "cache")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "test accuracy" in ran.stdout and "stopped 5" in ran.stdout


def test_tune_searches_the_plugin_model(tmp_path: Path) -> None:
    done = autoglm("tune", "--dataset", "karate", "--model", "mygcn", "--trials", "2",
                   "--seeds", "1", "--epochs", "10", "--workspace", str(tmp_path / "ws"),
                   "--json", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["best_model"] == "mygcn" and result["n_complete"] == 2


def test_a_plugin_that_fails_to_import_gets_one_paragraph_naming_it(tmp_path: Path) -> None:
    done = autoglm("models", cwd=tmp_path, plugins="no_such_plugin_module")
    assert done.returncode == 3
    assert "no_such_plugin_module" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1  # one paragraph


def test_a_plugin_with_a_bad_spec_is_named(tmp_path: Path) -> None:
    (tmp_path / "badplugin.py").write_text(textwrap.dedent("""
        from graph_ml.catalogue import ModelSpec, register_model
        register_model(ModelSpec("gcn", "a second gcn", "nobody", ("node_classification",),
                                 "graph_ml.models:GCN"))
    """))
    done = autoglm("models", cwd=tmp_path, plugins="badplugin", path=str(tmp_path))
    assert done.returncode == 3 and "badplugin" in done.stderr
    assert "already registered" in done.stderr and "Traceback" not in done.stderr


def test_an_entry_point_plugin_is_found(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "epplugin-0.1.dist-info").mkdir(parents=True)
    (site / "epplugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: epplugin\nVersion: 0.1\n"
    )
    (site / "epplugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[open_autoglm.models]\nepgcn = epplugin_mod\n"
    )
    (site / "epplugin_mod.py").write_text(textwrap.dedent("""
        from graph_ml.catalogue import ALL_TASKS, COMMON_SEARCH, ModelSpec, register_model
        register_model(ModelSpec("epgcn", "A GCN from an entry point.", "test", ALL_TASKS,
                                 "graph_ml.models:GCN", search=COMMON_SEARCH))
    """))
    done = autoglm("models", "--json", cwd=tmp_path, plugins="", path=str(site))
    assert done.returncode == 0, done.stderr
    assert "epgcn" in [m["name"] for m in json.loads(done.stdout)["models"]]


@pytest.mark.slow
def test_plan_and_run_name_the_plugin_model_with_the_real_planner(
    tmp_path: Path, data_dir: Path
) -> None:
    done = autoglm("plan", "train mygcn on karate", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    action = json.loads(done.stdout)["actions"][0]
    assert action["action"] == "train" and action["model"] == "mygcn"
    assert action["dataset"] == "karate"
    done = autoglm("run", "train mygcn on karate for 5 epochs", "--json", "--workspace",
                   str(tmp_path / "ws"), "--data-dir", str(data_dir), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    turn = json.loads(done.stdout)
    assert turn["outcomes"][0]["status"] == "succeeded"
    assert turn["outcomes"][0]["fields"]["model"] == "mygcn"
    assert turn["outcomes"][0]["fields"]["epochs"] == 5
