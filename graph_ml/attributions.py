"""Feature and edge attributions of a node classifier's predictions (GNNExplainer).

Pure graph code, no LLM and no store: the explain tool calls `explain_node` with a model
restored from a checkpoint; `agent.explain` words the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import UserInputError

if TYPE_CHECKING:
    import torch


def explain_node(
    model: torch.nn.Module,
    data: Any,
    node_ids: list[int],
    *,
    top_k: int = 5,
    epochs: int = 100,
    feature_names: list[str] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Feature and edge attributions of a node classifier's predictions, via GNNExplainer.

    Each node is explained on its own (a joint mask over several nodes would blur them).

    Args:
        model: a trained node classifier, `(x, edge_index) -> [N, C]` logits.
        data: a PyG `Data` with `x`, `edge_index` (and `y`, reported when present).
        node_ids: nodes to explain.
        top_k: how many features and edges to keep per node.
        epochs: GNNExplainer optimisation steps per node.
        feature_names: names of the feature columns, if known.
        seed: torch seed, so the masks are reproducible.

    Returns:
        One dict per node: `node`, `predicted`, `label`, `top_features`
        (`[{"index", "name", "score"}]`, the node mask averaged over the nodes that
        influenced the prediction, in [0, 1]) and `top_edges` (`[{"source", "target",
        "score"}]`, original node ids).

    Raises:
        UserInputError: a node id is out of range.
    """
    import torch
    from torch_geometric.explain import Explainer, GNNExplainer

    num_nodes = int(data.num_nodes)
    bad = [n for n in node_ids if not 0 <= int(n) < num_nodes]
    if bad or not node_ids:
        raise UserInputError(
            f"Nodes to explain must be ids in 0..{num_nodes - 1}; got {bad or 'none'}."
        )
    explainer = Explainer(
        model=model,
        algorithm=GNNExplainer(epochs=epochs),
        explanation_type="model",
        node_mask_type="attributes",
        edge_mask_type="object",
        model_config={
            "mode": "multiclass_classification",
            "task_level": "node",
            "return_type": "raw",
        },
    )
    model.eval()
    with torch.no_grad():
        predicted = model(data.x, data.edge_index).argmax(dim=-1)  # [N]
    hops = receptive_hops(model) + 1  # +1: boundary nodes keep their full degree
    out = []
    for node in node_ids:
        # Explaining on the node's neighbourhood is exact and far cheaper than the whole graph.
        subset, sub_edges, center = _neighbourhood(data, int(node), hops)
        torch.manual_seed(seed)
        explanation = explainer(data.x[subset], sub_edges, index=int(center))
        item = _node_attribution(explanation, subset, sub_edges, top_k, feature_names)
        out.append(_with_labels(item, data, int(node), predicted))
    return out


def receptive_hops(model: torch.nn.Module) -> int:
    """How many hops a prediction can see: one per message-passing layer, K for SGC/APPNP."""
    from torch_geometric.nn import MessagePassing

    return sum(int(getattr(m, "K", 1)) for m in model.modules() if isinstance(m, MessagePassing))


def _neighbourhood(data: Any, node: int, hops: int):
    from torch_geometric.utils import k_hop_subgraph

    subset, edge_index, mapping, _ = k_hop_subgraph(
        node, hops, data.edge_index, relabel_nodes=True, num_nodes=int(data.num_nodes)
    )
    return subset, edge_index, mapping[0]


def _node_attribution(explanation, subset, sub_edges, top_k, feature_names) -> dict[str, Any]:
    node_mask = explanation.node_mask  # [n_sub, F], zero where it had no influence
    touched = (node_mask > 0).any(dim=1)
    # Mean over the nodes that influenced the prediction: a score in [0, 1] per feature.
    feature_score = node_mask[touched].mean(dim=0) if touched.any() else node_mask[0]  # [F]
    k = min(top_k, int((feature_score > 0).sum()))
    scores, index = feature_score.topk(k)
    features = [
        {
            "index": int(i),
            "name": feature_names[int(i)] if feature_names else f"feature {int(i)}",
            "score": float(s),
        }
        for s, i in zip(scores, index, strict=True)
    ]
    edge_mask = explanation.edge_mask  # [E_sub]
    k = min(top_k, int((edge_mask > 0).sum()))
    scores, index = edge_mask.topk(k)
    edges = [
        {
            "source": int(subset[sub_edges[0, i]]),
            "target": int(subset[sub_edges[1, i]]),
            "score": float(s),
        }
        for s, i in zip(scores, index, strict=True)
    ]
    return {"top_features": features, "top_edges": edges}


def _with_labels(item: dict[str, Any], data: Any, node: int, predicted) -> dict[str, Any]:
    y = getattr(data, "y", None)
    return {
        "node": node,
        "predicted": int(predicted[node]),
        "label": None if y is None or y.dim() != 1 else int(y[node]),
        **item,
    }
