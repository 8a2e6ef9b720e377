"""Values derived from an object's contents, kept by that object (privately) and dropped when its contents change."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["Memo"]


class Memo:
    """A cache owned by one object (a hub, an SDAG). Readers ask for a value by key; the owner clears it."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value under `key`, computed by `compute()` the first time it is asked for."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def clear(self) -> None:
        self._values.clear()
