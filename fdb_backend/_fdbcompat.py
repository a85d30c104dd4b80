"""Make the official binding's tuple layer usable without FoundationDB's C client.

``fdb.tuple`` packs keys in pure Python, but ``Versionstamp.to_bytes`` checks
``isinstance(x, fdb.impl.Value)`` and ``fdb.impl`` loads ``libfdb_c`` when imported. When
the C client is absent we give ``fdb`` a stand-in ``impl`` whose ``Value`` nothing is an
instance of, which is exactly what that check needs; the real module replaces it whenever
the C client can be loaded.
"""

from __future__ import annotations

import importlib
import types

import fdb


class _NoValue:
    """Stands in for ``fdb.impl.Value``: nothing in the embedded engine is one."""


def install() -> None:
    if isinstance(getattr(fdb, "impl", None), types.ModuleType):
        return
    try:
        importlib.import_module("fdb.impl")  # loads the C client when present
    except Exception:  # the C client is missing or broken: keep the pure-Python tuple layer
        fdb.impl = types.SimpleNamespace(Value=_NoValue)


install()
