"""The package's exception hierarchy.

Every error open-autoglm raises on purpose derives from `AutoGLMError`, split by who caused it:

- `UserInputError`: the user's input is wrong (unknown dataset, malformed CSV, absurd
  parameter). The message says what was wrong and what to do instead.
- `SetupError`: the machine is missing something (an optional extra, data files offline).
  The message names the command or the files that fix it.
- Errors caused by an LLM's output live in `agent.errors` and subclass `AutoGLMError` too.

The CLI prints `str(error)` as one paragraph and exits with `error.exit_code`; it never
shows a traceback for these.

`Terminated` is not an error: it is how a SIGTERM arrives (a `KeyboardInterrupt`, so every
place that cleans up after Ctrl-C cleans up after a scheduler's `kill` too).
"""

from __future__ import annotations


class AutoGLMError(Exception):
    """Base class of every deliberate open-autoglm error."""

    exit_code = 1


class UserInputError(AutoGLMError, ValueError):
    """The user's input cannot be used as given; the message says how to fix it."""

    exit_code = 2


class SetupError(AutoGLMError, RuntimeError):
    """Something the machine lacks (an extra, a file, a server); the message says what."""

    exit_code = 3


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise `KeyboardInterrupt` (see `agent.cli`).

    A chat catches Ctrl-C to stop one request and go on; it lets this one end the process.
    """
