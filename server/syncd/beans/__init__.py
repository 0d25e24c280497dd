"""The bean model (beans, operations, parameters, attributes), the registry the edges look
beans up in, and the job and daemon beans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd._exports import public_names

if TYPE_CHECKING:
    from syncd.beans.daemonbean import daemon_bean
    from syncd.beans.jobbeans import JobBeans, JobStatus
    from syncd.beans.model import Attribute, Bean, Invocation, Operation, Parameter, Result
    from syncd.beans.registry import BeanRegistry

__all__ = [
    "Attribute",
    "Bean",
    "BeanRegistry",
    "Invocation",
    "JobBeans",
    "JobStatus",
    "Operation",
    "Parameter",
    "Result",
    "daemon_bean",
]

__getattr__ = public_names(
    __name__,
    {
        "model": ("Attribute", "Bean", "Invocation", "Operation", "Parameter", "Result"),
        "registry": ("BeanRegistry",),
        "jobbeans": ("JobBeans", "JobStatus"),
        "daemonbean": ("daemon_bean",),
    },
)
