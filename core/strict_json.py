"""JSON text read strictly: what clients send over REST, the pages' endpoints and WebSockets.

``json.loads`` accepts ``NaN``, ``Infinity`` and numbers like ``1e999`` (infinite), which are
not JSON (RFC 8259 §6) and which a browser's ``JSON.parse`` refuses, and raises
``RecursionError``, not ``ValueError``, on deeply nested input. Both become ``ValueError``
here, so every caller answers them as malformed JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any


def strict_loads(text: str | bytes) -> Any:
    """``json.loads``, refusing non-finite numbers and nesting Python cannot follow."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value
