"""Neighbour sampling for mini-batch training, with a pure-PyTorch fallback.

PyG's `NeighborLoader` samples with `pyg-lib` or `torch-sparse`, compiled extensions that
are not on PyPI for every torch build (none for our CPU torch 2.13). Where neither is
installed, `neighbor_loader` hands `NeighborLoader` a `TorchNeighborSampler`: the same CSC
layout and output format, sampled with vectorised torch ops (uniform, without replacement,
homogeneous graphs only). Draws come from torch's global RNG, so a seeded run repeats.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

import warnings
from typing import Any

import torch
import torch_geometric.typing as pyg_typing
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput


def has_compiled_sampler() -> bool:
    """True when PyG can sample neighbours itself (pyg-lib or torch-sparse installed)."""
    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


class TorchNeighborSampler(NeighborSampler):
    """`NeighborSampler` whose `_sample` is written in plain torch (homogeneous graphs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():  # PyG nags about pyg-lib; we know, that is the point
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(*args, **kwargs)

    def _sample(self, seed: Tensor, seed_time: Tensor | None = None, **kwargs: Any):
        if isinstance(seed, dict) or seed_time is not None:
            raise NotImplementedError("the torch sampler handles homogeneous, static graphs")
        num_nodes = self.colptr.numel() - 1
        local = torch.full((num_nodes,), -1, dtype=torch.long)  # global id -> batch position
        nodes = [seed]
        local[seed] = torch.arange(seed.numel())
        rows, cols, edges = [], [], []
        num_sampled_nodes, num_sampled_edges = [seed.numel()], []
        frontier, count = seed, seed.numel()
        for k in self.num_neighbors.get_mapped_values():
            edge = self._pick_edges(frontier, k)  # [E_hop] CSC positions
            src = self.row[edge]  # [E_hop] global ids of the sampled neighbours
            dst = torch.repeat_interleave(frontier, self._picked_per_node)  # [E_hop]
            new = torch.unique(src[local[src] < 0])
            local[new] = torch.arange(count, count + new.numel())
            count += new.numel()
            nodes.append(new)
            rows.append(local[src])
            cols.append(local[dst])
            edges.append(edge)
            num_sampled_nodes.append(new.numel())
            num_sampled_edges.append(edge.numel())
            frontier = new
        return SamplerOutput(
            node=torch.cat(nodes),
            row=torch.cat(rows),
            col=torch.cat(cols),
            edge=torch.cat(edges),
            batch=None,
            num_sampled_nodes=num_sampled_nodes,
            num_sampled_edges=num_sampled_edges,
        )

    def _pick_edges(self, frontier: Tensor, k: int) -> Tensor:
        """Up to `k` incoming edges of each frontier node (all of them when `k < 0`)."""
        start, end = self.colptr[frontier], self.colptr[frontier + 1]
        degree = end - start  # [F]
        owner = torch.repeat_interleave(torch.arange(frontier.numel()), degree)  # [sum(degree)]
        offset = torch.arange(owner.numel()) - torch.repeat_interleave(
            degree.cumsum(0) - degree, degree
        )
        edge = start[owner] + offset  # every candidate edge, grouped by frontier node
        if k >= 0:
            # A random key per candidate, sorted within each node: keep the first k.
            order = torch.argsort(owner.to(torch.float64) + torch.rand(owner.numel()).double())
            edge, owner = edge[order], owner[order]
            rank = torch.arange(owner.numel()) - torch.repeat_interleave(
                degree.cumsum(0) - degree, degree
            )
            keep = rank < k
            edge, owner = edge[keep], owner[keep]
        self._picked_per_node = torch.bincount(owner, minlength=frontier.numel())
        return edge


def neighbor_loader(
    data: Data, num_neighbors: list[int], input_nodes: Tensor, batch_size: int, shuffle: bool
) -> NeighborLoader:
    """A `NeighborLoader` over `input_nodes`, with the torch sampler where PyG has none."""
    sampler = None if has_compiled_sampler() else TorchNeighborSampler(data, num_neighbors)
    return NeighborLoader(
        data,
        num_neighbors=num_neighbors,
        input_nodes=input_nodes,
        batch_size=batch_size,
        shuffle=shuffle,
        neighbor_sampler=sampler,
    )
