"""The catalogue: what every task, hyper-parameter, model and dataset *is*, in one place.

Everything else derives from it: the action schema's bounds and enums (`agent.actions`), the
rule engine's compatibility, defaults and budget (`agent.router`), the tuner's search space
(`graph_ml.search_space`), the trainer's config bounds (`graph_ml.train`), the planner's
prompt (names, aliases, one-line descriptions) and the export script (`ExportRecipe`).

- `TASKS` / `TASK_SPECS`: the learning tasks, their metric and usual baseline model.
- `PARAMS`: every hyper-parameter a plan, the trainer or the tuner may set, with its ONE set
  of hard bounds and the range where a number is plausible for it.
- `MODELS`: `ModelSpec`s. Like PyG's `BasicGNN` (`supports_edge_weight`, ...), a spec's
  capabilities are attributes read by everyone else: its tasks, the model-specific
  parameters it `takes` (heads, aggr, K, alpha), its defaults per task, its search space,
  its paper and published figures, and how the export script builds it.
- `DATASETS`: `DatasetSpec`s with their tasks, size (for the budget estimate), aliases and
  a one-line description.

This module imports neither torch nor PyG, so listing the catalogue, validating a plan and
printing `--help` stay fast. A model's encoder class is named by a `"module:attribute"`
string (or given as the class itself by a plug-in) and imported only to build the model.

Plug-ins: a module that calls `register_model(ModelSpec(...))`, found through the entry-point
group `open_autoglm.models` or the environment variable `AUTOGLM_PLUGINS` (comma-separated
importable modules), is loaded the first time the catalogue is imported. See
`docs/plugins.md` and `examples/plugin_model.py`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from core.errors import SetupError, UserInputError
from core.registry import Registry

# ----------------------------------------------------------------------------------- tasks

Task = Literal["node_classification", "link_prediction", "graph_classification"]
TASKS: tuple[Task, ...] = ("node_classification", "link_prediction", "graph_classification")
ALL_TASKS = TASKS
NODE_TASKS: tuple[Task, ...] = ("node_classification", "link_prediction")
GRAPH_TASKS: tuple[Task, ...] = ("graph_classification",)


@dataclass(frozen=True)
class TaskSpec:
    """One learning task.

    Attributes:
        name: the task's name in plans and configs.
        metric: what the trainer reports for it.
        default_model: the usual baseline when a plan names no model.
        description: one line for prompts and listings.
    """

    name: Task
    metric: Literal["accuracy", "roc_auc"]
    default_model: str
    description: str


TASK_SPECS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "node_classification": TaskSpec(
            "node_classification", "accuracy", "gcn", "predict a label for each node"
        ),
        "link_prediction": TaskSpec(
            "link_prediction", "roc_auc", "gcn", "predict which node pairs are (or will be) linked"
        ),
        "graph_classification": TaskSpec(
            "graph_classification", "accuracy", "gin", "predict a label for each whole graph"
        ),
    }
)

# ---------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class FloatRange:
    """A float drawn from [low, high], log-uniformly when `log` (a search-space range)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """An integer drawn from [low, high], log-uniformly when `log`."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of `choices`; a single choice is a fixed value."""

    choices: tuple[int | float | str, ...]


Range = FloatRange | IntRange | Choice

# --------------------------------------------------------------------------- hyper-parameters


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its type, its hard bounds, and where a value is plausible.

    The bounds are what the value may be at all (a learning rate is in (0, 1]); the user's
    budget caps (`<workspace>/limits.json`) are a separate, narrower policy.

    Attributes:
        name: the field name in plans, configs and search spaces.
        kind: "int", "float" or "choice".
        description: what it is, for the action schema and prompts.
        low, high: the hard bounds (None: unbounded on that side).
        low_open, high_open: whether the bound itself is excluded.
        choices: the allowed values of a "choice" parameter.
        typical: where a number in a request is plausible for this field (a planner hint:
            "5" is no dropout, "100" no layer count); None: no such hint.
        model_specific: only models that list it in `ModelSpec.takes` use it.
    """

    name: str
    kind: Literal["int", "float", "choice"]
    description: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    typical: tuple[float, float] | None = None
    model_specific: bool = False

    def field_bounds(self) -> dict[str, float]:
        """The bounds as pydantic `Field` keywords (`ge`/`gt`/`le`/`lt`)."""
        out: dict[str, float] = {}
        if self.low is not None:
            out["gt" if self.low_open else "ge"] = self.low
        if self.high is not None:
            out["lt" if self.high_open else "le"] = self.high
        return out

    def interval(self) -> str:
        """The bounds as an interval for messages: `[1, 4096]`, `(0, 1]`."""
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}{right}"

    def problem(self, value: Any) -> str | None:
        """Why `value` is not a valid value of this parameter, or None when it is."""
        if self.kind == "choice":
            if value not in self.choices:
                return f"{self.name} cannot be {value!r}; choose from: {', '.join(self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be a number, got {value!r}"
        if self.kind == "int" and float(value) != int(value):
            return f"{self.name} must be a whole number, got {value}"
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        )
        if below or above:
            shown = value if isinstance(value, int) else f"{value:g}"
            return f"{self.name}={shown} is outside {self.interval()}"
        return None


_PARAM_LIST = (
    Param("epochs", "int", "training epochs", 1, 100_000, typical=(5, 10_000)),
    Param("lr", "float", "learning rate", 0.0, 1.0, low_open=True, typical=(1e-5, 0.5)),
    Param(
        "hidden_channels",
        "int",
        "hidden channels (hidden size, units; per head for attention models)",
        1,
        4096,
        typical=(4, 4096),
    ),
    Param(
        "num_layers",
        "int",
        "number of message-passing layers (SGC: propagation hops)",
        1,
        16,
        typical=(1, 10),
    ),
    Param(
        "dropout", "float", "dropout probability", 0.0, 1.0, high_open=True, typical=(0.05, 0.95)
    ),
    Param("weight_decay", "float", "L2 weight decay", 0.0, 1.0, typical=(0.0, 0.01)),
    Param(
        "heads",
        "int",
        "attention heads of the hidden layers",
        1,
        64,
        typical=(1, 16),
        model_specific=True,
    ),
    Param(
        "aggr",
        "choice",
        "neighbour aggregation",
        choices=("mean", "max", "sum", "min"),
        model_specific=True,
    ),
    Param("K", "int", "propagation steps", 1, 64, typical=(1, 64), model_specific=True),
    Param(
        "alpha",
        "float",
        "teleport (restart) probability",
        0.0,
        1.0,
        low_open=True,
        typical=(0.01, 0.5),
        model_specific=True,
    ),
    Param("seeds", "int", "number of random seeds to repeat over", 1, 100, typical=(1, 20)),
    Param("n_trials", "int", "number of tuning trials", 1, 10_000, typical=(5, 1000)),
    Param("patience", "int", "epochs without a better validation metric before stopping", 0),
)
PARAMS: Mapping[str, Param] = MappingProxyType({p.name: p for p in _PARAM_LIST})
# The hyper-parameters of the model and its optimiser (not the run's bookkeeping).
HPARAM_NAMES: tuple[str, ...] = (
    "epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay",
    "heads", "aggr", "K", "alpha",
)  # fmt: skip


def model_specific_params() -> tuple[str, ...]:
    """The parameters only some models take ("heads", "aggr", "K", "alpha")."""
    return tuple(name for name, p in PARAMS.items() if p.model_specific)


# ----------------------------------------------------------------------------------- models

# Used where a family says nothing; the GCN paper's recipe, which suits most small graphs.
BASE_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "hidden_channels": 16,
        "num_layers": 2,
        "dropout": 0.5,
        "lr": 0.01,
        "weight_decay": 5e-4,
        "epochs": 200,
        "patience": 100,  # epochs without a better val metric before stopping (GAT paper: 100)
        "scheduler": "none",  # the papers train at a constant rate
        "selection": "metric",  # keep the best-validation-metric epoch (train.EarlyStopping)
    }
)
# Graph classification: the GIN paper's protocol (Xu et al. 2019, section 7).
GRAPH_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "hidden_channels": 64,
        "num_layers": 5,
        "dropout": 0.5,
        "lr": 0.01,
        "weight_decay": 0.0,
        "epochs": 350,
        "batch_size": 32,
        "pooling": "sum",
        "patience": 0,  # off: ~17 validation graphs are too few to stop on
        "scheduler": "step",  # halve the rate every 50 epochs, as in the GIN paper
    }
)
# Link prediction: a wider embedding and no dropout on the scores (Kipf & Welling GAE).
LINK_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "hidden_channels": 128,
        "out_channels": 64,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "epochs": 100,
        "decoder": "dot",
    }
)

# Learning rate below 1e-3 never converges within the epoch budgets used here.
_LR = FloatRange(1e-3, 5e-2, log=True)
_WD = FloatRange(1e-6, 1e-2, log=True)  # log scale: 0 is not needed, 1e-6 ~ none
COMMON_SEARCH: Mapping[str, Range] = MappingProxyType(
    {
        "lr": _LR,
        "hidden_channels": IntRange(16, 256, log=True),
        "num_layers": IntRange(1, 3),
        "dropout": FloatRange(0.0, 0.8),
        "weight_decay": _WD,
    }
)


@dataclass(frozen=True)
class Published:
    """A published test accuracy (percent) under its paper's protocol, and its source."""

    dataset: str
    value: float
    source: str
    task: Task = "node_classification"
    splits: tuple[str, ...] = ("auto", "public")  # Planetoid's public split


@dataclass(frozen=True)
class ExportRecipe:
    """How the standalone export script (`prompts/export_script.py.j2`) builds the model.

    The script has one generic encoder (input dropout, `num_layers` layers with activation
    and dropout between them, optional output propagation); a recipe fills in the model.
    Expressions are Python, evaluated in the script with `c_in`, `c_out`, `last` (bool) and
    `cfg` (the run's resolved config) in scope.

    Attributes:
        imports: names the script imports from `torch_geometric.nn`.
        layer: one layer mapping `[N, c_in]` to `[N, c_out]` (`* heads` when concatenated).
        act: activation between layers, "relu" or "elu".
        concat_heads: hidden layers output `hidden * heads` features.
        single_layer: the model always has one layer (SGC: `num_layers` is its hops).
        propagate: an expression for a module applied to the last layer's output (APPNP).
        code: extra definitions the layer needs (a plug-in's own layer class).
    """

    imports: tuple[str, ...]
    layer: str
    act: Literal["relu", "elu"] = "relu"
    concat_heads: bool = False
    single_layer: bool = False
    propagate: str | None = None
    code: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One model family: what it is, what it takes, how it is built, tuned and exported.

    Attributes:
        name: registry name ("gcn"); lowercase letters, digits, "-" and "_".
        description: one line for listings, the planner's prompt and explanations.
        paper: the reference its defaults come from ("Kipf & Welling, ICLR 2017").
        tasks: the tasks it supports.
        encoder: the `GNNEncoder` subclass (`graph_ml.models`), or "module:attribute".
        aliases: other names users type ("graphsage").
        takes: the model-specific parameters it uses (names in `PARAMS`).
        defaults: hyper-parameters for every task, over `BASE_DEFAULTS`.
        task_defaults: per-task overrides of `defaults`.
        search: its tuning space (parameter -> range); empty: not searched by default.
        published: published figures on catalogue datasets.
        export: how the export script builds it; None: runs of it cannot be exported.
        uses_graph: False for the no-graph baseline (MLP), for explanations.
        supports_hetero: it has a version for heterogeneous graphs (`HeteroData`, typed
            node and edge files), built by `graph_ml.hetero` (R-GCN, HGT, `to_hetero` of
            SAGE and GAT, the typed MLP).
        requires_hetero: it runs on heterogeneous graphs only (HGT).
        uses_edge_types: on one node type, it reads edge types as relations (R-GCN: a
            'type' column of an edge file, MUTAG's bond types).
        hetero_defaults: per-task overrides of its defaults on a heterogeneous graph.
    """

    name: str
    description: str
    paper: str
    tasks: tuple[Task, ...]
    encoder: str | type
    aliases: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    task_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    search: Mapping[str, Range] = field(default_factory=dict)
    published: tuple[Published, ...] = ()
    export: ExportRecipe | None = None
    uses_graph: bool = True
    supports_hetero: bool = False
    requires_hetero: bool = False
    uses_edge_types: bool = False
    hetero_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def hparams(self, task: str, hetero: bool = False) -> dict[str, Any]:
        """The default hyper-parameters of this family for `task` (on a heterogeneous
        graph when `hetero`)."""
        extra = self.hetero_defaults.get(task, {}) if hetero else {}
        return {**BASE_DEFAULTS, **self.defaults, **self.task_defaults.get(task, {}), **extra}

    def takes_param(self, name: str) -> bool:
        """Whether a value of parameter `name` means something for this model."""
        param = PARAMS.get(name)
        return param is None or not param.model_specific or name in self.takes

    def published_figure(self, dataset: str, task: str, split: str | None) -> Published | None:
        """The published figure comparable to a run: same data, task and protocol."""
        for figure in self.published:
            if figure.dataset == dataset and figure.task == task:
                if (split or "auto") in figure.splits:
                    return figure
        return None

    def encoder_class(self) -> type:
        """The encoder class, imported on first use (this imports torch).

        Raises:
            SetupError: the "module:attribute" cannot be imported.
        """
        if not isinstance(self.encoder, str):
            return self.encoder
        module, _, attribute = self.encoder.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise SetupError(
                f"Model {self.name!r} names its encoder {self.encoder!r}, which cannot be "
                f"imported ({type(error).__name__}: {error}); fix the spec's encoder."
            ) from error


MODELS: Registry[ModelSpec] = Registry("model")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _check_spec(spec: ModelSpec) -> None:
    """Refuse a spec that would break what is derived from it.

    Raises:
        ValueError: the message names the spec and the problem.
    """
    where = f"model spec {spec.name!r}"
    if not spec.name or set(spec.name) - _NAME_CHARS:
        raise ValueError(f"{where}: the name must be lowercase letters, digits, '-' or '_'")
    if not spec.tasks or set(spec.tasks) - set(TASKS):
        raise ValueError(f"{where}: tasks must be a non-empty subset of {', '.join(TASKS)}")
    if not spec.description.strip() or "\n" in spec.description:
        raise ValueError(f"{where}: the description must be one non-empty line")
    for name in spec.takes:
        if name not in PARAMS or not PARAMS[name].model_specific:
            raise ValueError(
                f"{where}: takes {name!r}, which is not a model-specific parameter; choose "
                f"from: {', '.join(model_specific_params())}"
            )
    for name, value in spec.search.items():
        if name not in PARAMS or not spec.takes_param(name):
            raise ValueError(f"{where}: searches {name!r}, a parameter the model does not take")
        if not isinstance(value, (FloatRange, IntRange, Choice)):
            raise ValueError(f"{where}: the range of {name!r} is not a FloatRange/IntRange/Choice")
    if not isinstance(spec.encoder, (str, type)):
        raise ValueError(f"{where}: encoder must be a class or a 'module:attribute' string")
    if spec.export is not None:
        if not isinstance(spec.export, ExportRecipe):
            raise ValueError(f"{where}: export must be an ExportRecipe or None")
        bad = [name for name in spec.export.imports if not name.isidentifier()]
        if bad:
            raise ValueError(f"{where}: export imports {bad} are not Python names")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the catalogue (the public registration function plug-ins call).

    Args:
        spec: the model's spec; its encoder subclasses `graph_ml.models.GNNEncoder` and
            overrides `init_conv` (see docs/plugins.md).

    Returns:
        The spec, registered under its name and aliases.

    Raises:
        ValueError: the spec is malformed, or its name or an alias is already taken.
    """
    _check_spec(spec)
    return MODELS.register(spec.name, spec, spec.aliases)


_GCN_EXPORT = ExportRecipe(("GCNConv",), "GCNConv(c_in, c_out)")
_GAT_DEFAULTS = MappingProxyType(
    {
        "hidden_channels": 8,
        "heads": 8,
        "dropout": 0.6,
        "lr": 0.005,
        "output_heads": 1,
        "epochs": 1000,  # the paper trains until patience runs out
        "selection": "metric_and_loss",  # the paper's early-stopping rule
    }
)
# GAT and GATv2 differ only in how attention is scored; they share every recipe.
_GAT_TASK_DEFAULTS = MappingProxyType(
    {
        "link_prediction": {**LINK_DEFAULTS, "hidden_channels": 16, "lr": 0.01},
        "graph_classification": {**GRAPH_DEFAULTS, "hidden_channels": 16, "heads": 4},
    }
)
_ATTENTION_SEARCH = MappingProxyType(
    {
        **COMMON_SEARCH,
        "hidden_channels": IntRange(4, 64, log=True),  # per head; heads concatenate
        "num_layers": IntRange(2, 3),
        "heads": Choice((1, 2, 4, 8)),
    }
)
_STANDARD_TASK_DEFAULTS = MappingProxyType(
    {"link_prediction": LINK_DEFAULTS, "graph_classification": GRAPH_DEFAULTS}
)


def _gat_export(conv: str) -> ExportRecipe:
    return ExportRecipe(
        (conv,),
        f"{conv}(c_in, c_out, heads=1 if last else cfg['heads'], concat=not last, "
        "dropout=cfg['dropout'])",
        act="elu",
        concat_heads=True,
    )


_GIN_LAYER = (
    "GINConv(nn.Sequential(nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.ReLU(), "
    "nn.Linear(c_out, c_out)))"
)
_PLANETOID_GAT = ("Veličković et al., ICLR 2018",)
# Typed link prediction (dot product of the two end types' embeddings): measured on the
# planted user-item graph, at lr 0.01 the first steps blow the scores up and every score
# collapses to 0 (loss stuck at ln 2); at 0.001 it learns.
_HETERO_DEFAULTS = MappingProxyType(
    {"link_prediction": {"lr": 0.001, "epochs": 200, "dropout": 0.0, "weight_decay": 0.0}}
)

for _spec in (
    ModelSpec(
        "gcn",
        "Graph Convolutional Network: degree-normalised neighbour averaging.",
        "Kipf & Welling, ICLR 2017",
        ALL_TASKS,
        "graph_ml.models:GCN",
        task_defaults=_STANDARD_TASK_DEFAULTS,
        search=COMMON_SEARCH,
        published=(
            Published("cora", 81.5, "Kipf & Welling, ICLR 2017"),
            Published("citeseer", 70.3, "Kipf & Welling, ICLR 2017"),
        ),
        export=_GCN_EXPORT,
    ),
    ModelSpec(
        "gat",
        "Graph Attention Network: learned attention weights over neighbours.",
        _PLANETOID_GAT[0],
        ALL_TASKS,
        "graph_ml.models:GAT",
        takes=("heads",),
        defaults=_GAT_DEFAULTS,
        task_defaults=_GAT_TASK_DEFAULTS,
        search=_ATTENTION_SEARCH,
        published=(
            Published("cora", 83.0, _PLANETOID_GAT[0]),
            Published("citeseer", 72.5, _PLANETOID_GAT[0]),
        ),
        export=_gat_export("GATConv"),
        supports_hetero=True,
        hetero_defaults=_HETERO_DEFAULTS,
    ),
    ModelSpec(
        "gatv2",
        "GATv2: dynamic attention (the ranking of neighbours depends on the query node).",
        "Brody et al., ICLR 2022",
        ALL_TASKS,
        "graph_ml.models:GATv2",
        takes=("heads",),
        defaults=_GAT_DEFAULTS,
        task_defaults=_GAT_TASK_DEFAULTS,
        search=_ATTENTION_SEARCH,
        export=_gat_export("GATv2Conv"),
    ),
    ModelSpec(
        "sage",
        "GraphSAGE: separate self and mean-of-neighbours weights; inductive, samples well.",
        "Hamilton et al., NeurIPS 2017",
        ALL_TASKS,
        "graph_ml.models:SAGE",
        aliases=("graphsage",),
        takes=("aggr",),
        defaults={"hidden_channels": 64},
        task_defaults=_STANDARD_TASK_DEFAULTS,
        search={**COMMON_SEARCH, "aggr": Choice(("mean", "max", "sum"))},
        export=ExportRecipe(("SAGEConv",), "SAGEConv(c_in, c_out, aggr=cfg.get('aggr') or 'mean')"),
        supports_hetero=True,
        hetero_defaults=_HETERO_DEFAULTS,
    ),
    ModelSpec(
        "gin",
        "Graph Isomorphism Network: sum aggregation + MLP, as expressive as the WL test.",
        "Xu et al., ICLR 2019",
        ALL_TASKS,
        "graph_ml.models:GIN",
        defaults={"hidden_channels": 64},
        task_defaults=_STANDARD_TASK_DEFAULTS,
        search={**COMMON_SEARCH, "num_layers": IntRange(2, 5)},
        published=(
            Published("mutag", 89.4, "Xu et al., ICLR 2019", "graph_classification",
                      ("auto", "kfold")),  # 10-fold cross-validation, as in the paper
        ),  # fmt: skip
        export=ExportRecipe(("GINConv",), _GIN_LAYER),
    ),
    ModelSpec(
        "mlp",
        "Multi-layer perceptron on node features only: the no-graph baseline.",
        "baseline",
        ALL_TASKS,
        "graph_ml.models:MLP",
        defaults={"hidden_channels": 64},
        task_defaults=_STANDARD_TASK_DEFAULTS,
        search=COMMON_SEARCH,
        published=(
            Published("cora", 55.1, _PLANETOID_GAT[0]),
            Published("citeseer", 46.5, _PLANETOID_GAT[0]),
        ),
        export=ExportRecipe((), "Linear(c_in, c_out)"),
        uses_graph=False,
        supports_hetero=True,
        hetero_defaults=_HETERO_DEFAULTS,
    ),
    ModelSpec(
        "sgc",
        "Simplified Graph Convolution: K-hop feature propagation then a linear classifier.",
        "Wu et al., ICML 2019",
        NODE_TASKS,
        "graph_ml.models:SGC",
        defaults={"num_layers": 2, "dropout": 0.0, "lr": 0.2, "weight_decay": 5e-5, "epochs": 100},
        task_defaults={"link_prediction": {**LINK_DEFAULTS, "lr": 0.01}},
        # SGC has one linear layer; num_layers is K, the number of propagation hops.
        search={
            "lr": FloatRange(1e-2, 0.5, log=True),
            "weight_decay": _WD,
            "num_layers": IntRange(1, 3),
        },
        export=ExportRecipe(("SGConv",), "SGConv(c_in, c_out, K=cfg['num_layers'])",
                            single_layer=True),  # fmt: skip
    ),
    ModelSpec(
        "appnp",
        "APPNP: an MLP whose predictions are spread by personalised PageRank (K=10, alpha=0.1).",
        "Klicpera et al., ICLR 2019",
        NODE_TASKS,
        "graph_ml.models:APPNPNet",
        takes=("K", "alpha"),
        defaults={"hidden_channels": 64, "K": 10, "alpha": 0.1},
        task_defaults={"link_prediction": LINK_DEFAULTS},
        search={**COMMON_SEARCH, "K": IntRange(5, 20), "alpha": FloatRange(0.05, 0.3)},
        export=ExportRecipe(("APPNP",), "Linear(c_in, c_out)",
                            propagate="APPNP(K=cfg['K'], alpha=cfg['alpha'])"),  # fmt: skip
    ),
    ModelSpec(
        "rgcn",
        "R-GCN: one weight matrix per relation (edge or bond type), summed over relations.",
        "Schlichtkrull et al., ESWC 2018",
        ALL_TASKS,  # link prediction on heterogeneous graphs (one relation is predicted)
        "graph_ml.hetero:RGCNStack",
        aliases=("r-gcn",),
        defaults={"hidden_channels": 64},
        task_defaults={
            "link_prediction": LINK_DEFAULTS,
            # GIN's protocol with R-GCN's own depth: 3 layers of relation-wise sums.
            "graph_classification": {**GRAPH_DEFAULTS, "num_layers": 3, "epochs": 200},
        },
        supports_hetero=True,
        uses_edge_types=True,
        hetero_defaults=_HETERO_DEFAULTS,
    ),
    ModelSpec(
        "hgt",
        "Heterogeneous Graph Transformer: attention with per-type and per-relation weights.",
        "Hu et al., WWW 2020",
        NODE_TASKS,
        "graph_ml.hetero:HGT",
        takes=("heads",),
        defaults={"hidden_channels": 64, "heads": 2, "dropout": 0.2, "lr": 0.005},
        supports_hetero=True,
        requires_hetero=True,
        hetero_defaults=_HETERO_DEFAULTS,
    ),
):
    register_model(_spec)


def supported_tasks() -> dict[str, tuple[Task, ...]]:
    """Model name -> the tasks it supports."""
    return {name: spec.tasks for name, spec in MODELS.items()}


def models_for(task: str) -> list[str]:
    """The models that support `task`, in catalogue order."""
    return [name for name, spec in MODELS.items() if task in spec.tasks]


def get_model(name: str) -> ModelSpec:
    """The spec of model `name` (aliases accepted).

    Raises:
        UserInputError: unknown name; the message lists each model and its tasks.
    """
    if name not in MODELS:
        choices = "; ".join(f"{n} ({', '.join(t)})" for n, t in supported_tasks().items())
        raise UserInputError(f"Unknown model {name!r}; choose from: {choices}.")
    return MODELS.get(name)


def check_task(name: str, task: str) -> ModelSpec:
    """The spec of `name` after checking it supports `task`.

    Raises:
        UserInputError: unknown model or task, or a mismatch (the message names the models
            that do support the task).
    """
    spec = get_model(name)
    if task not in TASKS:
        raise UserInputError(f"Unknown task {task!r}; choose from: {', '.join(TASKS)}.")
    if task not in spec.tasks:
        raise UserInputError(
            f"Model {spec.name!r} does not support {task}; it supports "
            f"{', '.join(spec.tasks)}. For {task} choose from: {', '.join(models_for(task))}."
        )
    return spec


def default_hparams(name: str, task: str) -> dict[str, Any]:
    """Published default hyper-parameters of model `name` for `task`."""
    return check_task(name, task).hparams(task)


# --------------------------------------------------------------------------------- datasets

Level = Literal["node", "graph"]
Source = Literal["planetoid", "tu", "karate", "synthetic", "ogb", "csv"]


@dataclass(frozen=True)
class DatasetSize:
    """How big a dataset is, for the budget estimate; nodes and edges summed over graphs.

    Edges count both directions of an undirected edge, as PyG stores them.
    """

    nodes: int
    edges: int
    features: int
    classes: int
    graphs: int = 1


@dataclass(frozen=True)
class DatasetSpec:
    """One catalogue entry.

    Attributes:
        name: registry name ("cora").
        aliases: other names users type ("Cora", "zachary").
        level: "node" (one graph) or "graph" (many graphs).
        tasks: the tasks it supports; `default_task` is the usual one.
        source: which loader builds it (`graph_ml.datasets`).
        needs_download: False for datasets built into PyG or generated.
        raw_files: paths relative to `<data_dir>/<folder>`; all must be present offline.
        raw_sha256: known sha256 of raw files (relative path -> hex), checked before PyG
            reads them; empty where unknown (the loader then says they are not verified).
        description: one line for listings and the planner's prompt.
        size: nodes, edges, features, classes, graphs (None: unknown until loaded).
        homepage: where the files come from.
        folder: directory name under the data dir ("Cora", "MUTAG", "ogbn_arxiv").
        pyg_name: the name PyG's dataset class takes ("Cora", "IMDB-BINARY").
        label: how its authors write it, for sentences ("Cora", "CiteSeer").
    """

    name: str
    aliases: tuple[str, ...]
    level: Level
    tasks: tuple[Task, ...]
    default_task: Task
    source: Source
    needs_download: bool
    raw_files: tuple[str, ...]
    description: str
    size: DatasetSize | None = None
    raw_sha256: Mapping[str, str] = field(default_factory=dict)
    homepage: str = ""
    folder: str = ""
    pyg_name: str = ""

    @property
    def label(self) -> str:
        return self.pyg_name or self.name


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the catalogue (its `source` must have a loader in graph_ml.datasets).

    Raises:
        ValueError: the name or an alias is taken, or the spec is inconsistent.
    """
    if spec.default_task not in spec.tasks or set(spec.tasks) - set(TASKS):
        raise ValueError(f"dataset spec {spec.name!r}: default_task must be one of its tasks")
    return DATASETS.register(spec.name, spec, spec.aliases)


def _known_hashes(files: dict[str, str], sha256: dict[str, str] | None) -> dict[str, str]:
    """`raw_sha256` from hashes keyed by a file's part name ("x", "A"), every file or none."""
    if not sha256:
        return {}
    if set(sha256) != set(files):
        raise ValueError(f"raw hashes for {sorted(sha256)}, files are {sorted(files)}")
    return {files[part]: digest for part, digest in sha256.items()}


def _planetoid(
    name: str,
    pyg: str,
    size: DatasetSize,
    description: str,
    sha256: dict[str, str] | None = None,
) -> DatasetSpec:
    parts = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    files = {part: f"raw/ind.{pyg.lower()}.{part}" for part in parts}
    return DatasetSpec(
        name=name,
        aliases=(pyg,),
        level="node",
        tasks=NODE_TASKS,
        default_task="node_classification",
        source="planetoid",
        needs_download=True,
        raw_files=tuple(files.values()),
        raw_sha256=_known_hashes(files, sha256),
        description=description,
        size=size,
        homepage="https://github.com/kimiyoung/planetoid",
        folder=pyg,
        pyg_name=pyg,
    )


def _tu(
    name: str,
    pyg: str,
    extra: tuple[str, ...],
    size: DatasetSize,
    description: str,
    sha256: dict[str, str] | None = None,
) -> DatasetSpec:
    parts = ("A", "graph_indicator", "graph_labels", *extra)
    files = {part: f"raw/{pyg}_{part}.txt" for part in parts}
    return DatasetSpec(
        name=name,
        aliases=(pyg,),
        level="graph",
        tasks=GRAPH_TASKS,
        default_task="graph_classification",
        source="tu",
        needs_download=True,
        raw_files=tuple(files.values()),
        raw_sha256=_known_hashes(files, sha256),
        description=description,
        size=size,
        homepage="https://chrsmrrs.github.io/datasets/",
        folder=pyg,
        pyg_name=pyg,
    )


for _dataset in (
    _planetoid(
        "cora",
        "Cora",
        DatasetSize(2708, 10556, 1433, 7),
        "Citation network of 2708 machine-learning papers, 1433 bag-of-words features, "
        "7 subject classes.",
        # sha256 of each raw file, measured on the reference copy the tests use; checked
        # before PyG unpickles them (a pickle can run code), downloads included. Likewise
        # for CiteSeer and MUTAG below; the other datasets' files are read unverified.
        sha256={
            "x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
            "tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
            "allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
            "y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
            "ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
            "ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
            "graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
            "test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
        },
    ),
    _planetoid(
        "citeseer",
        "CiteSeer",
        DatasetSize(3327, 9104, 3703, 6),
        "Citation network of 3327 computer-science papers, 3703 bag-of-words features, "
        "6 classes.",
        sha256={
            "x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
            "tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
            "allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
            "y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
            "ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
            "ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
            "graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
            "test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
        },
    ),
    _planetoid(
        "pubmed",
        "PubMed",
        DatasetSize(19717, 88648, 500, 3),
        "Biomedical citation network of 19717 diabetes papers, 500 TF-IDF features, 3 classes.",
    ),
    _tu(
        "mutag",
        "MUTAG",
        ("node_labels", "edge_labels"),
        DatasetSize(3371, 7442, 7, 2, graphs=188),
        "188 nitroaromatic molecules (atoms and bonds), mutagenic or not.",
        sha256={
            "A": "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2",
            "graph_indicator": "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056",
            "graph_labels": "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c",
            "node_labels": "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863",
            "edge_labels": "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56",
        },
    ),
    _tu(
        "proteins",
        "PROTEINS",
        ("node_labels",),
        DatasetSize(43471, 162088, 3, 2, graphs=1113),
        "1113 protein structure graphs, enzyme or not.",
    ),
    _tu(
        "enzymes",
        "ENZYMES",
        ("node_labels",),
        DatasetSize(19580, 74564, 3, 6, graphs=600),
        "600 enzyme structure graphs in 6 EC top-level classes.",
    ),
    _tu(
        "imdb-binary",
        "IMDB-BINARY",
        (),
        DatasetSize(19773, 193062, 136, 2, graphs=1000),
        "1000 movie actor ego-networks, action or romance; one-hot degrees as features.",
    ),
    DatasetSpec(
        name="karate",
        aliases=("karateclub", "zachary"),
        level="node",
        tasks=NODE_TASKS,
        default_task="node_classification",
        source="karate",
        needs_download=False,
        raw_files=(),
        description="Zachary's karate club social network: 34 members, 4 communities; "
        "built into PyG.",
        size=DatasetSize(34, 156, 34, 4),
        homepage="https://en.wikipedia.org/wiki/Zachary%27s_karate_club",
    ),
    DatasetSpec(
        name="sbm",
        aliases=("stochastic-block-model", "synthetic"),
        level="node",
        tasks=NODE_TASKS,
        default_task="node_classification",
        source="synthetic",
        needs_download=False,
        raw_files=(),
        description="Synthetic stochastic block model: 4 blocks of 100 nodes, 16 noisy "
        "features.",
        size=DatasetSize(400, 3400, 16, 4),
    ),
    DatasetSpec(
        name="ogbn-arxiv",
        aliases=("arxiv",),
        level="node",
        tasks=NODE_TASKS,
        default_task="node_classification",
        source="ogb",
        needs_download=True,
        raw_files=(
            "RELEASE_v1.txt",
            "raw/edge.csv.gz",
            "raw/node-feat.csv.gz",
            "raw/node-label.csv.gz",
            "raw/node_year.csv.gz",
            "raw/num-edge-list.csv.gz",
            "raw/num-node-list.csv.gz",
            "split/time/train.csv.gz",
            "split/time/valid.csv.gz",
            "split/time/test.csv.gz",
        ),
        description="arXiv computer-science citation graph: 169343 papers, 128 features, "
        "40 subject areas (needs `ogb`).",
        size=DatasetSize(169343, 1166243, 128, 40),
        homepage="https://ogb.stanford.edu/docs/nodeprop/#ogbn-arxiv",
        folder="ogbn_arxiv",
    ),
):
    register_dataset(_dataset)


# ---------------------------------------------------------------------------------- plug-ins

PLUGIN_GROUP = "open_autoglm.models"
PLUGIN_ENV = "AUTOGLM_PLUGINS"
_loaded_plugins: list[str] = []


def plugin_modules() -> list[str]:
    """The modules named by `AUTOGLM_PLUGINS` (comma-separated), in order."""
    return [name.strip() for name in os.environ.get(PLUGIN_ENV, "").split(",") if name.strip()]


def _plugin_error(source: str, error: BaseException) -> SetupError:
    return SetupError(
        f"The model plug-in {source} could not be loaded ({type(error).__name__}: {error}). "
        f"Fix the module, or remove it from {PLUGIN_ENV} (or uninstall the package that "
        f"declares it under the entry-point group {PLUGIN_GROUP!r}); docs/plugins.md shows "
        "a working plug-in."
    )


def load_plugins() -> list[str]:
    """Import every plug-in module once: entry points first, then `AUTOGLM_PLUGINS`.

    Returns:
        The plug-in modules loaded so far.

    Raises:
        SetupError: a plug-in failed to import or registered a bad spec (names the module).
    """
    from importlib.metadata import entry_points

    sources = [(f"{ep.value} (entry point {ep.name!r})", ep) for ep in
               entry_points(group=PLUGIN_GROUP)]  # fmt: skip
    sources += [(f"module {name!r}", name) for name in plugin_modules()]
    for label, target in sources:
        key = target if isinstance(target, str) else target.value
        if key in _loaded_plugins:
            continue
        _loaded_plugins.append(key)  # before importing: a plug-in importing us is no loop
        try:
            if isinstance(target, str):
                importlib.import_module(target)
            else:
                loaded = target.load()
                if callable(loaded):
                    loaded()
        except Exception as error:  # noqa: BLE001 - any failure of foreign code: name it
            _loaded_plugins.remove(key)
            raise _plugin_error(label, error) from error
    return list(_loaded_plugins)


load_plugins()
