"""Graph machine learning: datasets, preprocessing, model zoo, training and tuning.

No LLM code lives here; `tools` wraps these functions and `agent` drives the tools.
"""
