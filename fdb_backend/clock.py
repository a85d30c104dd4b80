"""The clocks that measure transaction age, timeouts and the age of versions.

Module-level indirections so tests can drive time (``monkeypatch.setattr(clock,
"monotonic", fake)``, and ``clock.wall`` for the age of versions) instead of sleeping past
FoundationDB's 5-second limit.

* ``monotonic``: a transaction's own age and timeout, within one process.
* ``wall``: when a commit happened (``write_log.committed_at`` in the embedded store), so
  every process sharing a store, and a process after a reboot, agree on how old a version
  is: it decides which read versions are still inside the MVCC window and which old
  versions may be pruned.
"""

from __future__ import annotations

import time

monotonic = time.monotonic
wall = time.time
