"""`autoglm ui`: a local web page over the experiment store and the Optuna studies.

The pages read the same SQLite store (`agent.store.ExperimentStore`) and studies the CLI
writes; chat turns go through `agent.session.Session`, so a conversation started here is
the one `autoglm chat --resume` continues. Everything it serves comes from installed
packages (plotly.js from the `plotly` wheel): it works offline.

Modules, one per concept:
- `security`: who may ask (loopback only, or a token), the CSRF secret, escaping.
- `app`: the Starlette application, its templates and static files, `serve()`.
- `runs`: the experiments list, a run's page, downloads (report, script), compare.
- `studies`: the Optuna studies of the workspace (or of a PostgreSQL URL).
- `jobs`: long work (a chat turn, a rerun, an upload's training) in a worker thread,
  with the events its page streams (server-sent events).
- `chat`, `data`: the chat page; the catalogue, data doctor and CSV upload.
"""
