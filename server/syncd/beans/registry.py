"""The bean registry: beans are registered explicitly and looked up by full or short name.

A bean may carry aliases (the old service's names for it, e.g. `PersonElasticSearchSyncJob`):
every lookup resolves them here, in this one place, so each edge (gRPC, shell, console, old REST
API) accepts them alike and everything downstream only ever sees the bean's own name.
"""

from __future__ import annotations

from syncd.beans.model import Bean, short_name
from syncd.errors import BeanNotFoundError, DuplicateBeanError, closest


class BeanRegistry:
    """Holds the daemon's beans in registration order."""

    def __init__(self) -> None:
        self._beans: dict[str, Bean] = {}
        self._names: dict[str, str] = {}  # every accepted short name (names, aliases) → name

    def register(self, bean: Bean) -> None:
        """Add `bean`; a name or alias that another name already claims (in any case) is
        refused, so a lookup never has two answers."""
        claimed = {n.lower() for n in self._names}
        wanted = [bean.name, *bean.aliases]
        for name in wanted:
            if name.lower() in claimed:
                raise DuplicateBeanError(name)
            claimed.add(name.lower())
        self._beans[bean.name] = bean
        for name in wanted:
            self._names[name] = bean.name

    def get(self, ref: str) -> Bean:
        """The bean named `ref` (`sync.mbean:name=X` or `X`, X its name or an alias;
        case-insensitive, as names are unique regardless of case)."""
        name = short_name(ref)
        canonical = self._names.get(name)
        if canonical is None:
            folded = [c for n, c in self._names.items() if n.lower() == name.lower()]
            canonical = folded[0] if folded else None
        if canonical is not None:
            return self._beans[canonical]
        suggestions = [self._names[n] for n in closest(name, self._names, limit=6)]
        raise BeanNotFoundError(ref, list(dict.fromkeys(suggestions))[:3])

    def beans(self) -> list[Bean]:
        return list(self._beans.values())

    def __len__(self) -> int:
        return len(self._beans)
