"""The states and outcomes the daemon reasons about; the proto mirrors them one to one."""

from __future__ import annotations

import enum


class Trigger(enum.StrEnum):
    """Who or what started a run."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    STARTUP = "startup"
    DEPENDENCY = "dependency"
    CATCH_UP = "catch-up"


class RunState(enum.StrEnum):
    """Where a run is in its life; FINISHED runs carry an outcome."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"


class RunOutcome(enum.StrEnum):
    """How a run ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    SKIPPED_ALREADY_RUNNING = "skipped_already_running"
    SKIPPED_PREREQUISITE_FAILED = "skipped_prerequisite_failed"
    MISSED = "missed"


class BeanState(enum.StrEnum):
    """What `syncctl status` shows for a bean."""

    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    PAUSED = "paused"
    DISABLED = "disabled"


class Impact(enum.StrEnum):
    """JMX's MBeanOperationInfo impact: does the operation only read, or act?"""

    INFO = "info"
    ACTION = "action"
    ACTION_INFO = "action_info"
