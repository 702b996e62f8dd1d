"""The trainer on small synthetic graphs, plus `autoglm-train` on real Cora."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch_geometric.data import Data

from agent.cli import main, train_main
from core.errors import UserInputError
from graph_ml.datasets import DATASETS, LoadedDataset, make_sbm
from graph_ml.sampling import TorchNeighborSampler, neighbor_loader
from graph_ml.train import (
    EarlyStopping,
    TrainConfig,
    confusion_matrix,
    macro_f1,
    roc_auc,
    train,
)


@pytest.fixture(scope="module")
def sbm() -> LoadedDataset:
    """Three well-separated blocks of 30 nodes (random stratified split)."""
    data = make_sbm((30, 30, 30), p_in=0.2, p_out=0.01, num_features=8, feature_noise=1.0)
    return LoadedDataset(spec=DATASETS.get("sbm"), graphs=[data])


@pytest.fixture(scope="module")
def cycles_and_stars() -> LoadedDataset:
    """20 small graphs: cycles (class 0) and stars (class 1), constant node features."""
    graphs = []
    for i in range(20):
        n = 5 + i % 4
        if i % 2 == 0:
            src = torch.arange(n)
            dst = (src + 1) % n
        else:
            src = torch.zeros(n - 1, dtype=torch.long)
            dst = torch.arange(1, n)
        edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
        graphs.append(Data(x=torch.ones(n, 1), edge_index=edge_index, y=torch.tensor([i % 2])))
    return LoadedDataset(spec=DATASETS.get("mutag"), graphs=graphs)


def config(**kw) -> TrainConfig:
    base = dict(dataset="sbm", task="node_classification", epochs=30, progress=False)
    return TrainConfig(**{**base, **kw})


def test_node_classification_learns(sbm: LoadedDataset) -> None:
    result = train(config(), dataset=sbm)
    run = result.runs[0]
    assert result.metric == "accuracy"
    assert run.test_metric > 0.8  # chance is 1/3
    assert len(run.curves) == run.stopped_epoch == 30
    assert {"train_loss", "val_metric", "val_loss", "test_metric", "lr"} <= set(run.curves[0])
    assert run.curves[-1]["train_loss"] < run.curves[0]["train_loss"]
    assert sum(map(sum, run.confusion)) == round(90 * 0.2)  # every test node counted once
    assert 0 < run.metrics["macro_f1"] <= 1
    assert result.config.lr == 0.01 and result.config.hidden_channels == 16  # GCN defaults


def test_same_seed_same_curves_other_seed_differs(sbm: LoadedDataset) -> None:
    first = train(config(model="gat", epochs=8, seed=3), dataset=sbm)
    again = train(config(model="gat", epochs=8, seed=3), dataset=sbm)
    other = train(config(model="gat", epochs=8, seed=4), dataset=sbm)
    assert first.runs[0].curves == again.runs[0].curves
    assert first.runs[0].curves != other.runs[0].curves


def test_early_stopping_stops_after_patience(sbm: LoadedDataset) -> None:
    result = train(config(epochs=500, patience=5, lr=0.05), dataset=sbm)
    run = result.runs[0]
    assert run.stopped_epoch < 500
    assert run.stopped_epoch - run.best_epoch == 5
    assert run.curves[run.best_epoch - 1]["val_metric"] == max(c["val_metric"] for c in run.curves)


def test_gat_paper_rule_keeps_only_epochs_good_on_both() -> None:
    stopper = EarlyStopping("metric_and_loss", patience=2)
    assert stopper.keep(1, 0.5, 1.0)
    assert not stopper.keep(2, 0.6, 1.2)  # accuracy up, loss up: progress, but not kept
    assert not stopper.should_stop(2)
    assert stopper.keep(3, 0.6, 0.9)
    assert not stopper.keep(4, 0.55, 0.95)
    assert not stopper.keep(5, 0.55, 0.95)
    assert stopper.should_stop(5) and stopper.best_epoch == 3


def test_several_seeds_mean_and_std(sbm: LoadedDataset) -> None:
    result = train(config(seeds=3, seed=7, epochs=10), dataset=sbm)
    tests = [r.test_metric for r in result.runs]
    assert [r.seed for r in result.runs] == [7, 8, 9]
    assert result.test_mean == pytest.approx(statistics.fmean(tests))
    assert result.test_std == pytest.approx(statistics.stdev(tests))


def test_on_epoch_sees_every_epoch_and_can_stop(sbm: LoadedDataset) -> None:
    seen = []

    def record(index: int, epoch: int, metrics: dict) -> None:
        seen.append((index, epoch, metrics["val_metric"]))
        if epoch == 4:
            raise KeyboardInterrupt  # any exception: Optuna raises TrialPruned

    with pytest.raises(KeyboardInterrupt):
        train(config(epochs=20), dataset=sbm, on_epoch=record)
    assert [e for _, e, _ in seen] == [1, 2, 3, 4]


def test_best_checkpoint_saved_and_loadable(sbm: LoadedDataset, tmp_path) -> None:
    from graph_ml.models import build_model

    result = train(config(epochs=5), dataset=sbm, checkpoint_dir=tmp_path)
    state = torch.load(result.runs[0].checkpoint)
    model = build_model("gcn", "node_classification", 8, 3)
    model.load_state_dict(state)  # raises if keys or shapes differ


def test_link_prediction_beats_chance(sbm: LoadedDataset) -> None:
    result = train(config(task="link_prediction", epochs=40), dataset=sbm)
    assert result.metric == "roc_auc"
    assert result.runs[0].test_metric > 0.6
    assert result.runs[0].confusion is None


def test_graph_classification_kfold(cycles_and_stars: LoadedDataset) -> None:
    result = train(
        TrainConfig(
            dataset="mutag", model="gin", folds=4, epochs=25, hidden_channels=16,
            num_layers=2, batch_size=8, progress=False,
        ),
        dataset=cycles_and_stars,
    )  # fmt: skip
    assert [r.fold for r in result.runs] == [0, 1, 2, 3]
    assert result.test_mean > 0.7  # degree sums separate cycles from stars
    assert result.config.scheduler == "step" and result.config.pooling == "sum"


def test_mini_batch_neighbour_sampling(sbm: LoadedDataset) -> None:
    result = train(config(model="sage", mini_batch=True, batch_size=16, epochs=15), dataset=sbm)
    assert result.runs[0].test_metric > 0.7


def test_torch_sampler_respects_fan_out_and_graph() -> None:
    torch.manual_seed(0)
    edge_index = torch.randint(0, 40, (2, 300))
    data = Data(x=torch.arange(40.0).view(-1, 1), edge_index=edge_index, num_nodes=40)
    loader = neighbor_loader(data, [3, 2], torch.arange(10), batch_size=5, shuffle=False)
    edges = set(map(tuple, edge_index.t().tolist()))
    for batch in loader:
        global_edges = batch.n_id[batch.edge_index]  # [2, E] back in original ids
        assert all(tuple(e) in edges for e in global_edges.t().tolist())
        seeds_in = torch.bincount(batch.edge_index[1], minlength=batch.num_nodes)[:5]
        assert int(seeds_in.max()) <= 3
        assert torch.equal(batch.x.view(-1).long(), batch.n_id)
    sampler = TorchNeighborSampler(data, [-1])
    out = sampler._sample(torch.tensor([0]))
    assert out.row.numel() == int((edge_index[1] == 0).sum())  # -1 takes every neighbour


def test_metrics_by_hand() -> None:
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert roc_auc(torch.tensor([1.0, 1.0]), torch.tensor([0, 1])) == 0.5  # ties count half
    pred, y = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    assert confusion_matrix(pred, y, 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert macro_f1(pred, y, 3) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_mismatch_and_bad_config_errors(sbm: LoadedDataset) -> None:
    with pytest.raises(UserInputError, match="does not support graph_classification"):
        train(config(model="sgc", task="graph_classification"), dataset=sbm)
    with pytest.raises(ValueError, match="extra"):
        TrainConfig(learning_rate=0.1)


def test_curves_carry_train_accuracy(sbm: LoadedDataset, cycles_and_stars) -> None:
    from graph_ml.splits import make_split
    from graph_ml.train import NodeRunner, resolve_config

    cfg = resolve_config(config(epochs=1), sbm)
    split = make_split(sbm, "node_classification", seed=0)
    job = NodeRunner(cfg, sbm, split, torch.device("cpu"))
    with torch.no_grad():
        job.model.eval()
        pred = job.model(job.x, job.edge_index).argmax(-1)
    mask = split.train_mask
    expected = float((pred[mask] == job.y[mask]).float().mean())
    assert job.evaluate()["train_metric"] == pytest.approx(expected)  # eval mode, train mask
    result = train(config(epochs=40), dataset=sbm)
    curves = result.runs[0].curves
    assert all(0.0 <= row["train_metric"] <= 1.0 for row in curves)
    assert curves[-1]["train_metric"] > curves[0]["train_metric"]
    mini = train(config(epochs=2, mini_batch=True, batch_size=16), dataset=sbm)
    assert all(0.0 <= row["train_metric"] <= 1.0 for row in mini.runs[0].curves)
    graphs = train(
        TrainConfig(dataset="mutag", model="gin", epochs=2, folds=4, fold=0, progress=False),
        dataset=cycles_and_stars,
    )
    assert all(0.0 <= row["train_metric"] <= 1.0 for row in graphs.runs[0].curves)


def test_model_specific_hparams_reach_the_model(sbm: LoadedDataset) -> None:
    from graph_ml.splits import make_split
    from graph_ml.train import NodeRunner, resolve_config

    split = make_split(sbm, "node_classification", seed=0)
    cpu = torch.device("cpu")
    sage = resolve_config(config(model="sage", aggr="max"), sbm)
    convs = NodeRunner(sage, sbm, split, cpu).model.convs
    assert [str(c.aggr) for c in convs] == ["max"] * len(convs)
    default = NodeRunner(resolve_config(config(model="sage"), sbm), sbm, split, cpu).model
    assert str(default.convs[0].aggr) == "mean"
    appnp = resolve_config(config(model="appnp"), sbm)
    assert (appnp.K, appnp.alpha) == (10, 0.1)  # the model's published defaults
    prop = NodeRunner(appnp.model_copy(update={"K": 3, "alpha": 0.3}), sbm, split, cpu).model.prop
    assert (prop.K, prop.alpha) == (3, 0.3)
    result = train(config(model="sage", aggr="sum", epochs=3), dataset=sbm)
    assert result.config.aggr == "sum"
    with pytest.raises(UserInputError, match="aggr applies to sage only"):
        train(config(model="gcn", aggr="max"), dataset=sbm)
    with pytest.raises(UserInputError, match="K applies to appnp only"):
        train(config(model="gcn", K=5), dataset=sbm)
    with pytest.raises(ValueError, match="aggr"):
        TrainConfig(aggr="median")
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha=0)


def test_cli_trains_cora_exactly_as_documented(data_dir, capsys) -> None:
    code = train_main(
        ["--dataset", "cora", "--task", "node_classification", "--epochs", "5",
         "--data-dir", str(data_dir), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "gcn on cora (node_classification)" in out and "test accuracy:" in out
    code = main(
        ["train", "--dataset", "cora", "--epochs", "3", "--model", "mlp", "--json",
         "--data-dir", str(data_dir)]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["config"]["model"] == "mlp"
    assert len(result["runs"][0]["curves"]) == 3


def test_cli_mismatch_is_one_line_error(capsys) -> None:
    code = train_main(["--dataset", "sbm", "--model", "sgc", "--task", "graph_classification"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Model 'sgc' does not support") and "Traceback" not in err
    assert train_main(["--dataset", "sbm", "--lr", "-1"]) == 2
    assert "--lr" in capsys.readouterr().err
