"""Facts of an inspect run: the dataset statistics and the bands they fall in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent.facts.common import Timing, timing

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

# Edge homophily bands: below 0.5 most edges join different classes (neighbour averaging
# hurts); from 0.7 neighbours usually agree (GCN-style averaging is a strong first choice).
HOMOPHILY_LOW, HOMOPHILY_HIGH = 0.5, 0.7
IMBALANCE_NOTE = 3.0  # largest/smallest class ratio above which macro-F1 is worth reading
FEW_GRAPHS = 1000  # fewer graphs than this: a graph-level test estimate is noisy


class InspectFacts(BaseModel):
    kind: str = "inspect"
    run_id: int
    dataset: str
    level: str
    num_graphs: int | None = None
    num_nodes: float | None = None  # per graph on average for graph-level data
    num_edges: float | None = None
    num_features: int | None = None
    num_classes: int | None = None
    avg_degree: float | None = None
    homophily: float | None = None
    homophily_band: str  # low, mid, high, unknown
    isolated: int | None = None
    imbalance: float | None = None  # largest / smallest class
    imbalanced: bool = False
    few_graphs: bool = False
    problems: list[str] = Field(default_factory=list)
    fingerprint: str | None = None
    timing: Timing = Field(default_factory=Timing)


def inspect_facts(record: RunRecord, store: ExperimentStore | None = None) -> InspectFacts:
    result: dict[str, Any] = record.result or {}
    stats = result.get("stats", result)
    homophily = stats.get("edge_homophily")
    if homophily is None:
        band = "unknown"
    elif homophily < HOMOPHILY_LOW:
        band = "low"
    else:
        band = "high" if homophily >= HOMOPHILY_HIGH else "mid"
    balance = stats.get("class_balance")
    level = result.get("level") or stats.get("level", "node")
    graphs = stats.get("num_graphs") if level == "graph" else None
    imbalance = None if not balance else 1.0 / balance
    return InspectFacts(
        run_id=record.id,
        dataset=result.get("dataset") or stats.get("name") or record.config.get("dataset", ""),
        level=level,
        num_graphs=graphs,
        num_nodes=stats.get("avg_nodes" if level == "graph" else "num_nodes"),
        num_edges=stats.get("avg_edges" if level == "graph" else "num_edges"),
        num_features=stats.get("num_features"),
        num_classes=stats.get("num_classes"),
        avg_degree=(stats.get("degree") or {}).get("mean"),
        homophily=homophily,
        homophily_band=band,
        isolated=stats.get("isolated_nodes"),
        imbalance=imbalance,
        imbalanced=imbalance is not None and imbalance > IMBALANCE_NOTE,
        few_graphs=graphs is not None and graphs < FEW_GRAPHS,
        problems=list(stats.get("advice") or []),
        fingerprint=record.dataset_fingerprint,
        timing=timing(record, store),
    )
