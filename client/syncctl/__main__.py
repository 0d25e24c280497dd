"""`python -m syncctl`."""

from __future__ import annotations

from syncctl.cli import main

raise SystemExit(main())
