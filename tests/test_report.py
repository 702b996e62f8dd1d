"""Reports and `autoglm experiments`: real files, embedded images, a runnable export."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.experiments import rerun
from agent.export import export_script
from agent.report import write_report
from agent.store import ExperimentStore
from core.errors import UserInputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def seed_run(seed: int, test: float, epochs: int = 30) -> dict[str, Any]:
    curves = [
        {"epoch": e, "train_loss": 2.0 / e, "val_metric": min(0.8, 0.3 + 0.05 * e),
         "val_loss": 1.5 - 0.03 * e, "test_metric": test}
        for e in range(1, epochs + 1)
    ]  # fmt: skip
    return {
        "seed": seed, "best_epoch": 10, "stopped_epoch": epochs, "val_metric": 0.8,
        "test_metric": test, "metrics": {"accuracy": test, "macro_f1": test - 0.02},
        "curves": curves, "checkpoint": None, "seconds": 0.5,
        "confusion": [[40, 3, 1], [5, 30, 2], [0, 4, 25]],
    }  # fmt: skip


def train_result(model: str, tests: list[float]) -> dict[str, Any]:
    mean = sum(tests) / len(tests)
    std = (sum((t - mean) ** 2 for t in tests) / (len(tests) - 1)) ** 0.5 if len(tests) > 1 else 0
    config = {"dataset": "cora", "task": "node_classification", "model": model, "epochs": 30,
              "lr": 0.01, "hidden_channels": 16, "num_layers": 2, "dropout": 0.5,
              "weight_decay": 5e-4, "heads": 1, "seeds": len(tests), "seed": 0,
              "patience": 100, "split": "auto", "folds": 10, "batch_size": None,
              "normalize_features": True, "pooling": None}  # fmt: skip
    return {
        "config": config, "metric": "accuracy",
        "runs": [seed_run(i, t) for i, t in enumerate(tests)],
        "test_mean": mean, "test_std": std, "val_mean": 0.8, "val_std": 0.0,
        "seconds": 1.5, "device": "cpu",
    }  # fmt: skip


def store_train(store: ExperimentStore, model: str, tests: list[float]) -> int:
    result = train_result(model, tests)
    run_id = store.start_run("train", result["config"], dataset_fingerprint="f00d")
    store.finish_run(run_id, "succeeded", metrics={"test_mean": result["test_mean"]}, result=result)
    return run_id


def embedded_images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_train_report_files_images_and_costs(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    run_id = store_train(store, "gcn", [0.812, 0.806, 0.815])
    store.log_step(run_id, "plan", 3.25, prompt_tokens=812, completion_tokens=64, reasks=2)
    reason = "task set to node_classification because Cora is a node-level dataset"
    store.log_step(run_id, "rule", 0.004, detail=[{"rule": "defaults", "reason": reason}])
    store.log_step(run_id, "tool:train", 12.5, peak_mb=731.5)
    files = write_report(store, run_id)

    assert files.markdown == tmp_path / "reports" / str(run_id) / "report.md"
    assert {p.name for p in files.images} == {"learning_curves.png", "confusion.png"}
    for image in files.images:
        assert image.read_bytes().startswith(PNG_MAGIC) and image.stat().st_size > 5000
    md = files.markdown.read_text()
    assert "![Learning curves](learning_curves.png)" in md
    mean = store.get_run(run_id).result["test_mean"]
    assert f"{100 * mean:.2f}%" in md  # the summary quotes the stored number
    assert "| plan | 3.250 | - | 812 | 64 | 2 |" in md
    assert f"defaults: {reason}" in md
    assert "731.5" in md and "f00d" in md
    html = files.html.read_text()
    images = embedded_images(html)
    assert len(images) == 2 and all(i.startswith(PNG_MAGIC) for i in images)
    assert 'src="learning_curves.png"' not in html  # self-contained: nothing to fetch


def test_tune_compare_and_interrupted_reports(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    history = [
        {"number": i, "state": "PRUNED" if i % 3 == 2 else "COMPLETE", "value": 0.6 + 0.02 * i,
         "best_value": None, "model": "gcn", "params": {"lr": 0.01 * (i + 1)}, "epochs": 50,
         "seconds": 1.0}
        for i in range(8)
    ]  # fmt: skip
    tune = {
        "dataset": "cora", "metric": "accuracy", "models": ["gcn"], "best_model": "gcn",
        "best_params": {"lr": 0.08}, "best_value": 0.74, "n_trials": 8, "n_pruned": 2,
        "n_failed": 0, "history": history, "importances": {"lr": 0.8, "dropout": 0.2},
        "retrained": train_result("gcn", [0.80, 0.81]),
    }  # fmt: skip
    tune_id = store.start_run("tune", {"dataset": "cora", "models": ["gcn"]})
    store.finish_run(tune_id, "succeeded", result=tune)
    files = write_report(store, tune_id)
    names = {p.name for p in files.images}
    assert {"tuning_history.png", "importances.png", "retrained_learning_curves.png"} <= names
    # The retraining's table comes from the stored facts, as a train run's does.
    retrained = files.markdown.read_text().split("Retrained Results per seed", 1)[1]
    assert "train-val gap (points)" in retrained.split("Retrained Learning curves")[0]

    a, b = (
        store_train(store, "gcn", [0.81, 0.82, 0.815]),
        store_train(store, "mlp", [0.57, 0.59, 0.58]),
    )
    cmp_id = store.start_run("compare", {"runs": [a, b]})
    entries = [{"label": "gcn", "run_id": a}, {"label": "mlp", "run_id": b}]
    store.finish_run(cmp_id, "succeeded", result={"entries": entries})
    files = write_report(store, cmp_id, language="zh")
    assert [p.name for p in files.images] == ["comparison.png"]
    assert "Welch" in files.markdown.read_text() and "差异显著" in files.markdown.read_text()
    stored_runs = store.start_run("compare", {})  # "compare runs 1 and 2": no config of its own
    store.finish_run(stored_runs, "succeeded", result={"entries": entries})
    text = write_report(store, stored_runs).markdown.read_text()
    assert f"| compared runs | {a}, {b} |" in text
    assert "| seeds per entry | gcn: 3; mlp: 3 |" in text  # not "seeds 0": it ran none itself

    killed = store.start_run("train", {"dataset": "cora", "model": "gat"})
    for epoch in range(1, 6):
        store.log_epoch(killed, 0, epoch, {"train_loss": 1.0 / epoch, "val_metric": 0.1 * epoch})
    store.finish_run(killed, "interrupted", error="the process running it stopped")
    files = write_report(store, killed)
    assert "interrupted" in files.markdown.read_text()
    assert [p.name for p in files.images] == ["learning_curves.png"]


def test_report_and_experiments_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = ExperimentStore(tmp_path)
    run_id = store_train(store, "gat", [0.83, 0.825])
    store.log_step(run_id, "rule", 0.01, detail=[{"rule": "defaults", "reason": "lr set to 0.01"}])
    ws = ["--workspace", str(tmp_path)]
    assert main(["report", str(run_id), *ws, "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert Path(paths["html"]).is_file() and len(paths["images"]) == 2
    assert main(["experiments", "list", *ws, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == run_id and listed[0]["metrics"]["test_mean"] == pytest.approx(0.8275)
    assert main(["experiments", "show", str(run_id), *ws]) == 0
    out = capsys.readouterr().out
    assert "hidden_channels = 16" in out and "82.75%" in out and "costs:" in out
    assert "rule: defaults: lr set to 0.01" in out
    assert main(["experiments", "show", "999", *ws]) == 2
    assert "No experiment 999" in capsys.readouterr().err
    assert main(["experiments", "rerun", str(run_id + 1), *ws]) == 2  # not there: clear error


def test_exported_script_runs_on_cora(tmp_path: Path, data_dir: Path) -> None:
    store = ExperimentStore(tmp_path / "ws")
    run_id = store_train(store, "gcn", [0.81])
    script = tmp_path / "reproduce.py"
    assert main(["experiments", "export", str(run_id), "--workspace", str(tmp_path / "ws"),
                 "-o", str(script)]) == 0  # fmt: skip
    text = script.read_text()
    assert "open_autoglm" not in text and "from agent" not in text and "graph_ml" not in text
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(data_dir), "--cache-dir",
         str(tmp_path / "cache"), "--epochs", "5", "--seeds", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"test accuracy (\d\.\d{4}) ± 0\.0000 over 1 run", done.stdout)
    assert match and 0.3 < float(match.group(1)) <= 1.0, done.stdout
    assert "seed 0: best epoch" in done.stdout and "stopped 5" in done.stdout


def test_export_refuses_what_it_cannot_reproduce(tmp_path: Path) -> None:
    from core.errors import UserInputError

    store = ExperimentStore(tmp_path)
    tune_id = store.start_run("tune", {"dataset": "cora"})
    with pytest.raises(UserInputError, match="only train runs"):
        export_script(store.get_run(tune_id))
    link = train_result("gcn", [0.9])
    link["config"]["task"] = "link_prediction"
    link_id = store.start_run("train", link["config"])
    store.finish_run(link_id, "succeeded", result=link)
    with pytest.raises(UserInputError, match="node or graph classification"):
        export_script(store.get_run(link_id))


def test_rerun_repeats_a_real_training_run(tmp_path: Path, data_dir: Path) -> None:
    from graph_ml.train import TrainConfig, train

    store = ExperimentStore(tmp_path)
    config = TrainConfig(dataset="cora", model="gcn", epochs=5, seeds=1, progress=False,
                         data_dir=str(data_dir))  # fmt: skip
    result = train(config).model_dump(mode="json")
    run_id = store.start_run("train", result["config"])
    store.finish_run(run_id, "succeeded", result=result)
    new = rerun(store, run_id, data_dir=data_dir)
    assert new.parent_id == run_id and new.status == "succeeded"
    assert new.metrics["test_mean"] == pytest.approx(result["test_mean"], abs=1e-6)  # same seed
    assert [e.epoch for e in store.epochs(new.id)] == [1, 2, 3, 4, 5]
    # One path: the rerun ran the train tool like any other run (loading is inside its step).
    assert [s.name for s in store.steps(new.id)] == ["tool:train"]
    assert list(store.checkpoint_dir(new.id).glob("*.pt"))


def test_report_tool_renders_plain_data_without_a_store(tmp_path: Path) -> None:
    from tools import TOOLS

    # The tool does not reach up to the agent layer: importing and calling it loads none of it.
    code = (
        "import sys, tools\n"
        "run = {'id': 1, 'kind': 'inspect', 'status': 'succeeded', 'title': 'inspect karate',"
        " 'result': {'stats': {'num_nodes': 34, 'class_counts': [17, 17]}}}\n"
        f"tools.TOOLS.get('report')({{'run': run, 'out_dir': {str(tmp_path / 'sub')!r}}})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agent'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
    assert (tmp_path / "sub" / "class_counts.png").read_bytes().startswith(PNG_MAGIC)
    run = {
        "id": 7, "kind": "train", "status": "succeeded", "title": "train gcn on cora",
        "summary": "GCN reached 81.10% test accuracy.", "config": {"model": "gcn", "lr": 0.01},
        "seeds": [0, 1], "result": train_result("gcn", [0.81, 0.812]),
        "steps": [{"name": "plan", "seconds": 1.5, "prompt_tokens": 300, "completion_tokens": 20,
                   "detail": [{"rule": "defaults", "reason": "epochs set to 30"}]}],
    }  # fmt: skip
    out = tmp_path / "plain"
    files = TOOLS.get("report")({"run": run, "out_dir": str(out), "language": "zh"})
    assert not (tmp_path / "experiments.sqlite").exists() and files.markdown == out / "report.md"
    assert {p.name for p in files.images} == {"learning_curves.png", "confusion.png"}
    md = files.markdown.read_text()
    assert "run 7 (train gcn on cora, succeeded)" in md and "81.10% test accuracy" in md
    assert "| plan | 1.500 | - | 300 | 20 | - |" in md
    assert "## Plan and rule decisions\n\n- plan: defaults: epochs set to 30" in md
    assert "| lr | 0.01 |" in md
    html = files.html.read_text()
    assert '<html lang="zh-CN">' in html and len(embedded_images(html)) == 2

    cmp = {"metric": "accuracy", "t": 4.2, "p_value": 0.013, "entries": [
        {"label": "gcn", "run_id": 1, "n": 3, "mean": 0.81, "std": 0.005,
         "values": [0.805, 0.81, 0.815]},
        {"label": "mlp", "n": 3, "mean": 0.58, "std": 0.01}]}  # fmt: skip
    run = {"id": 8, "kind": "compare", "status": "succeeded", "title": "compare", "comparison": cmp}
    files = TOOLS.get("report")({"run": run, "out_dir": str(out / "cmp")})
    md = files.markdown.read_text()
    assert "t = 4.2, p = 0.013" in md and "| mlp | - | 3 | 58.00% | 1.00% |" in md
    assert [p.name for p in files.images] == ["comparison.png"]
    with pytest.raises(UserInputError, match="run.id"):
        TOOLS.get("report")({"run": {"kind": "train"}, "out_dir": str(out)})
