"""A name -> item registry that refuses duplicates and lists choices on a failed lookup.

Used for datasets, GNN models, samplers and tools (shape of PyG's `graphgym/register.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from core.errors import UserInputError

T = TypeVar("T")


def canonical(name: str) -> str:
    """Normalise a user-facing name: case, spaces, dashes and underscores are not significant."""
    return "".join(ch for ch in name.strip().lower() if ch not in " -_")


class Registry(Generic[T]):
    """Items keyed by canonical name, with aliases.

    Args:
        kind: what the items are, for error messages ("dataset", "model").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._names: dict[str, str] = {}  # canonical(name or alias) -> registered name

    def register(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> T:
        """Add `item` under `name` and its aliases.

        Raises:
            ValueError: the name or an alias is already taken (a programming error).
        """
        for key in (name, *aliases):
            ckey = canonical(key)
            if ckey in self._names:
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered for {self._names[ckey]!r}"
                )
        self._items[name] = item
        for key in (name, *aliases):
            self._names[canonical(key)] = name
        return item

    def resolve(self, name: str) -> str:
        """Return the registered name for `name` or one of its aliases.

        Raises:
            UserInputError: unknown name; the message lists the valid choices.
        """
        key = canonical(name)
        if key not in self._names:
            raise UserInputError(
                f"Unknown {self.kind} {name!r}; choose from: {', '.join(sorted(self._items))}."
            )
        return self._names[key]

    def get(self, name: str) -> T:
        return self._items[self.resolve(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical(name) in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def aliases(self, name: str) -> list[str]:
        """Every canonical key (including the name itself) that resolves to `name`."""
        return [key for key, target in self._names.items() if target == name]
