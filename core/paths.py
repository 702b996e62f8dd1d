"""Which files a user-named path may reach: the allowed roots.

A path the user typed is resolved from the current directory (as a shell would), symlinks
included, and must then lie under one of the allowed roots: the current directory, the
workspace, the data directory, and every directory in `AUTOGLM_ALLOWED_PATHS` (separated
like PATH). The check is made on the resolved path of every file that is actually opened,
not only on the path that was typed: `./g/edges.csv -> /etc/shadow` is refused even when
`./g` is fine. Refusals name the path as typed and the roots, never a byte of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserInputError

ENV_ALLOWED = "AUTOGLM_ALLOWED_PATHS"


class PathNotAllowedError(UserInputError):
    """A path (or a file it leads to) is outside every allowed root."""


def _resolve(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


@dataclass(frozen=True)
class AllowedRoots:
    """The directories user-named files may be read from (all resolved, symlinks followed).

    Attributes:
        roots: the resolved root directories.
        cwd: the directory relative paths are resolved from.
    """

    roots: tuple[Path, ...]
    cwd: Path

    @classmethod
    def default(
        cls,
        workspace: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        cwd: str | os.PathLike | None = None,
        extra: Iterable[str | os.PathLike] = (),
    ) -> AllowedRoots:
        """Roots from the current directory, workspace, data directory and the environment."""
        here = _resolve(cwd or Path.cwd())
        found = [here]
        found += [_resolve(here / p) for p in (workspace, data_dir) if p]
        env = os.environ.get(ENV_ALLOWED, "")
        found += [_resolve(here / p) for p in (*extra, *env.split(os.pathsep)) if str(p).strip()]
        return cls(tuple(dict.fromkeys(found)), here)

    def contains(self, resolved: Path) -> bool:
        """True when the already resolved `resolved` is a root or lies under one."""
        return any(resolved == root or root in resolved.parents for root in self.roots)

    def resolve(self, typed: str | os.PathLike) -> Path:
        """The path the user typed, resolved from `cwd` (symlinks followed) and checked.

        Raises:
            PathNotAllowedError: it resolves outside every root.
            UserInputError: it does not exist.
        """
        path = _resolve(self.cwd / Path(typed).expanduser())
        if not self.contains(path):
            raise PathNotAllowedError(self._refusal(typed, path))
        if not path.exists():
            raise UserInputError(
                f"{typed} does not exist (looked for {path}); check the path, which is read "
                f"from the current directory {self.cwd}."
            )
        return path

    def check(self, path: str | os.PathLike) -> Path:
        """Resolve a file that is about to be opened and return it if it is allowed.

        Raises:
            PathNotAllowedError: the file (after following symlinks) is outside every root.
        """
        resolved = _resolve(self.cwd / Path(path))
        if not self.contains(resolved):
            raise PathNotAllowedError(self._refusal(path, resolved))
        return resolved

    def _refusal(self, typed: str | os.PathLike, resolved: Path) -> str:
        via = "" if str(resolved) == str(typed) else f" (it leads to {resolved})"
        return (
            f"{typed} is outside the directories autoglm may read{via}; allowed: "
            f"{', '.join(str(r) for r in self.roots)}. Fix: copy the files under one of them, "
            f"or add the directory to {ENV_ALLOWED}."
        )
