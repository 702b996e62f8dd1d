"""The model zoo on tiny hand-built graphs: shapes, learning, registry errors, defaults."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.errors import UserInputError
from graph_ml.models import (
    MODELS,
    FeatureDropout,
    build_model,
    check_task,
    default_hparams,
    supported_tasks,
)

# Two squares joined by one edge; nodes 0-3 are class 0, nodes 4-7 class 1.
EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (3, 4)]
EDGE_INDEX = torch.tensor(EDGES + [(b, a) for a, b in EDGES]).t()  # [2, 18]
Y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def features() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 5, generator=gen)  # [8, 5]
    x[:4, 0] += 1.0  # a weak class signal
    return x


# Typed models (R-GCN, HGT) are built from a graph's types by graph_ml.hetero: test_hetero.
TYPED = {"rgcn", "hgt"}
CASES = [
    (name, task) for name, tasks in supported_tasks().items() for task in tasks if name not in TYPED
]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_forward_shapes_and_loss_decreases(name: str, task: str) -> None:
    torch.manual_seed(0)
    x = features()
    model = build_model(name, task, in_channels=5, out_channels=2, hidden_channels=8, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    if task == "node_classification":

        def loss_fn() -> torch.Tensor:
            out = model(x, EDGE_INDEX)
            assert out.shape == (8, 2)
            return F.cross_entropy(out, Y)
    elif task == "link_prediction":
        pos = EDGE_INDEX  # [2, 18]
        neg = torch.tensor([[0, 1, 2, 5, 6, 7], [6, 7, 5, 0, 2, 1]])  # [2, 6] across the halves
        pairs = torch.cat([pos, neg], dim=1)
        labels = torch.cat([torch.ones(18), torch.zeros(6)])

        def loss_fn() -> torch.Tensor:
            out = model(x, EDGE_INDEX, pairs)
            assert out.shape == (24,)
            return F.binary_cross_entropy_with_logits(out, labels)
    else:
        batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])  # each square is one graph
        graph_y = torch.tensor([0, 1])

        def loss_fn() -> torch.Tensor:
            out = model(x, EDGE_INDEX, batch)
            assert out.shape == (2, 2)
            return F.cross_entropy(out, graph_y)

    model.train()
    first = loss_fn().item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < first - 1e-3, f"{name}/{task} did not learn"


def test_every_family_registered_with_its_tasks() -> None:
    assert set(MODELS) == {"gcn", "gat", "gatv2", "sage", "gin", "mlp", "sgc", "appnp"} | TYPED
    assert "graph_classification" not in MODELS.get("sgc").tasks
    assert MODELS.resolve("GraphSAGE") == "sage"


def test_unknown_model_lists_names_and_tasks() -> None:
    with pytest.raises(UserInputError) as info:
        build_model("gcm", "node_classification", 5, 2)
    message = str(info.value)
    assert "'gcm'" in message
    assert "gat (node_classification" in message
    assert "sgc (node_classification, link_prediction)" in message


def test_model_task_mismatch_names_alternatives() -> None:
    with pytest.raises(UserInputError, match="does not support graph_classification") as info:
        check_task("appnp", "graph_classification")
    assert "gin" in str(info.value) and "appnp" not in str(info.value).split("choose from:")[1]
    with pytest.raises(UserInputError, match="Unknown task"):
        check_task("gcn", "edge_regression")


def test_paper_defaults_exposed() -> None:
    gat = default_hparams("gat", "node_classification")
    assert (gat["hidden_channels"], gat["heads"], gat["lr"], gat["dropout"]) == (8, 8, 0.005, 0.6)
    assert gat["weight_decay"] == 5e-4
    gcn = default_hparams("gcn", "node_classification")
    assert (gcn["hidden_channels"], gcn["lr"], gcn["dropout"]) == (16, 0.01, 0.5)
    assert gcn["epochs"] == 200
    gin = default_hparams("gin", "graph_classification")
    assert (gin["num_layers"], gin["hidden_channels"], gin["pooling"]) == (5, 64, "sum")


def test_gat_widths_follow_heads() -> None:
    model = build_model("gat", "node_classification", 5, 3)
    assert model.convs[0].heads == 8 and model.convs[0].out_channels == 8
    assert model.convs[1].in_channels == 64 and model.convs[1].heads == 1


def test_bad_values_rejected() -> None:
    with pytest.raises(UserInputError, match="dropout"):
        build_model("gcn", "node_classification", 5, 2, dropout=1.5)
    with pytest.raises(UserInputError, match="pooling"):
        build_model("gin", "graph_classification", 5, 2, pooling="max")


def test_feature_dropout_keeps_zeros_and_scales_survivors() -> None:
    torch.manual_seed(0)
    x = torch.zeros(200, 50)
    x[torch.rand(200, 50) < 0.1] = 1.0  # sparse, like bag-of-words
    layer = FeatureDropout(0.5)
    out = layer(x)
    assert torch.all(out[x == 0] == 0)
    kept = out[x == 1]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (kept == 0).float().mean().item() < 0.6
    layer.eval()
    assert layer(x) is x
    dense = torch.ones(10, 10)  # dense input falls back to F.dropout, same contract
    layer.train()
    assert set(layer(dense).unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_linear_first_sage_is_the_same_function(aggr: str) -> None:
    from torch_geometric.nn import SAGEConv

    from graph_ml.models import LinearFirstSAGEConv

    torch.manual_seed(0)
    x = torch.randn(30, 40)  # [30, 40]; nodes 25..29 get no edges (isolated)
    edge_index = torch.randint(0, 25, (2, 100))
    reference = SAGEConv(40, 8, aggr=aggr)
    fast = LinearFirstSAGEConv(40, 8, aggr=aggr)
    fast.load_state_dict(reference.state_dict())
    torch.testing.assert_close(fast(x, edge_index), reference(x, edge_index))
