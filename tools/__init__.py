"""Typed tool wrappers the router calls; they call graph_ml and hold no LLM code."""
