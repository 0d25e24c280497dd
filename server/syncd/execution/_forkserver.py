"""Imported last by the job processes' fork server (the executor's preload list), after the
modules the jobs need: what is set here holds for every job process it forks."""

from __future__ import annotations

from syncd.cpuslice import set_thread_slice

# The daemon's short slice (daemon.cpu_slice_us) is for its own threads; jobs get the default.
set_thread_slice(0)
