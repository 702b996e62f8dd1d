"""Prompt and explanation templates, loaded with importlib.resources and rendered by Jinja2."""
