"""The API's JSON renderer gives DRF's bytes, only faster."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest
from rest_framework.renderers import JSONRenderer as DrfRenderer

from core.renderers import JSONRenderer

SAMPLES: list[Any] = [
    {"a": 1, "b": [1.5, None, True], "c": "é ü 漢字 🚀", "d": {"e": ""}},
    [],
    {"id": str(uuid.uuid4()), "n": 2**63 - 1, "f": 1e300, "neg": -0.25},
    {"js": "line\u2028separator\u2029"},
    {"when": datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=datetime.UTC)},
    {"price": decimal.Decimal("1.10")},
    {"big": 2**70},
    {"uuid": uuid.UUID(int=7)},
    "text",
]


@pytest.mark.parametrize("data", SAMPLES)
def test_same_bytes_as_drf(data: Any) -> None:
    assert JSONRenderer().render(data, "application/json") == DrfRenderer().render(
        data, "application/json"
    )


def test_indent_asked_for_is_honoured() -> None:
    data = {"a": [1, 2]}
    indented = JSONRenderer().render(data, "application/json; indent=2")
    assert indented == DrfRenderer().render(data, "application/json; indent=2")
    assert b"\n" in indented


def test_nothing_renders_as_empty() -> None:
    assert JSONRenderer().render(None) == b""
