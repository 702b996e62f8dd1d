"""Thin CLI subcommands: each module adds one parser and calls the library."""
