"""The clock that measures transaction age and timeouts.

A module-level indirection so tests can drive time (``monkeypatch.setattr(clock,
"monotonic", fake)``) instead of sleeping past FoundationDB's 5-second limit.
"""

from __future__ import annotations

import time

monotonic = time.monotonic
