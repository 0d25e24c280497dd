"""The bean registry: beans are registered explicitly and looked up by full or short name."""

from __future__ import annotations

from syncd.beans import Bean, short_name
from syncd.errors import BeanNotFoundError, DuplicateBeanError, closest


class BeanRegistry:
    """Holds the daemon's beans in registration order."""

    def __init__(self) -> None:
        self._beans: dict[str, Bean] = {}

    def register(self, bean: Bean) -> None:
        if bean.name in self._beans or any(n.lower() == bean.name.lower() for n in self._beans):
            raise DuplicateBeanError(bean.name)
        self._beans[bean.name] = bean

    def get(self, ref: str) -> Bean:
        """The bean named `ref` (`sync.mbean:name=X` or `X`; case-insensitive if unique)."""
        name = short_name(ref)
        bean = self._beans.get(name)
        if bean is not None:
            return bean
        folded = [b for n, b in self._beans.items() if n.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise BeanNotFoundError(ref, closest(name, self._beans))

    def beans(self) -> list[Bean]:
        return list(self._beans.values())

    def __len__(self) -> int:
        return len(self._beans)
