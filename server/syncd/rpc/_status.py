"""GetStatus's bean messages, kept between calls while they hold."""

from __future__ import annotations

from collections.abc import Iterable

from syncd.beans.jobbeans import JobStatus
from syncd.beans.model import Bean
from syncd.rpc import convert
from syncd_api.v1 import management_pb2 as pb


class StatusMessages:
    """Each idle bean's status message from the last GetStatus, given again while the bean and
    its status are unchanged. Status is the control plane's most frequent call, and an idle
    bean's answer (several timestamps) costs more to build than its status costs to compare;
    a running bean's elapsed time moves, so its message is built afresh every time."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Bean, JobStatus, pb.BeanStatus]] = {}

    def of(self, statuses: Iterable[tuple[Bean, JobStatus]]) -> list[pb.BeanStatus]:
        kept: dict[str, tuple[Bean, JobStatus, pb.BeanStatus]] = {}
        messages = []
        for bean, status in statuses:
            last = self._kept.get(bean.name)
            if last is not None and last[0] is bean and last[1] == status:
                message = last[2]
            else:
                message = convert.bean_status(bean, status)
            if status.current is None:
                kept[bean.name] = (bean, status, message)
            messages.append(message)
        self._kept = kept  # only the beans there are now
        return messages
