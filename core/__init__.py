"""Plumbing every layer may use: errors, registries, the cache directory, allowed paths.

The bottom of the one-way layering (`docs/architecture.md`): `core` imports nothing of the
project, and every other package (graph_ml, tools, agent) may import it.
"""
