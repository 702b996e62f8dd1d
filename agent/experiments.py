"""What `autoglm experiments` does with stored runs beyond reading them: rerun.

`rerun(store, run_id)` repeats a stored train or tune run with its full config, as a new run
whose parent is the old one, through the same executor and tools as every other run
(`agent.executor`), and says whether the data it read is the same as the old run's.
`summary_metrics` (the few numbers `experiments list` shows) lives with the executor, which
stores them; `agent.export` writes the standalone script that reproduces a train run.
"""

from __future__ import annotations

from pathlib import Path

from agent.executor import (  # noqa: F401 - re-exported for the commands
    EpochCallback,
    Executor,
    ExecutorOptions,
    RunFailed,
    rerun_call,
    summary_metrics,
)
from agent.store import ExperimentStore, RunRecord


def rerun(
    store: ExperimentStore,
    run_id: int,
    data_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
) -> RunRecord:
    """Run a stored train or tune run's config again, as a new run (parent: the old one).

    Args:
        store: the experiment store.
        run_id: the run to repeat.
        data_dir: raw datasets (default `AUTOGLM_DATA_DIR`).
        on_epoch: progress callback `(run_id, seed, epoch, metrics)`, after each stored epoch.
        progress: draw the tools' progress bars on stderr.

    Returns:
        The new run's record (succeeded). Its dataset fingerprint tells whether the data
        changed since the old run (`same_data`).

    Raises:
        UserInputError: no such run, or a kind that cannot be rerun.
        RunFailed: the rerun failed; it is stored as failed.
    """
    record = store.get_run(run_id)
    options = ExecutorOptions(
        data_dir=Path(data_dir) if data_dir else None, on_epoch=on_epoch, progress=progress
    )
    done = Executor(store, options).execute_or_raise(rerun_call(record), parent=record.id)
    return store.get_run(done.run_id)


def same_data(old: RunRecord, new: RunRecord) -> bool | None:
    """Whether two runs read the same data (by fingerprint); None when one has none."""
    if not old.dataset_fingerprint or not new.dataset_fingerprint:
        return None
    return old.dataset_fingerprint == new.dataset_fingerprint
