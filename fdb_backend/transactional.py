"""``@transactional``: the official binding's retry loop, for every engine."""

from __future__ import annotations

import functools
import inspect
import time
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from fdb_backend import metrics
from fdb_backend.errors import FDBError

P = ParamSpec("P")
R = TypeVar("R")


def _is_database(obj: object) -> bool:
    return hasattr(obj, "create_transaction")


# Where ``tr`` is among a function's parameters, by code object: services decorate closures at
# every call, and inspect.signature each time cost 4% of a session list's CPU.
_TR_INDEX: dict[types.CodeType, int] = {}


def _tr_index(func: Callable[..., Any]) -> int:
    plain = type(func) is types.FunctionType and not hasattr(func, "__wrapped__")
    code = func.__code__ if plain else None
    if code is not None and code in _TR_INDEX:
        return _TR_INDEX[code]
    params = list(inspect.signature(func).parameters)
    index = params.index("tr") if "tr" in params else 0
    if code is not None and not hasattr(func, "__signature__"):
        _TR_INDEX[code] = index
    return index


def transactional(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` in a transaction, as ``fdb.transactional`` does.

    Called with a database (positionally or as ``tr=``), it creates a transaction, runs
    ``func``, commits, and on a retryable error backs off, resets and runs ``func`` again
    (so ``func`` may run several times: no side effects outside the transaction in it).
    Called with a transaction, it joins it and does not commit. Non-retryable errors raise.
    """
    index = _tr_index(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "tr" in kwargs:
            target = kwargs["tr"]
            if not _is_database(target):
                return func(*args, **kwargs)
            tr = target.create_transaction()
            kwargs = {**kwargs, "tr": tr}
            call_args = args
        else:
            target = args[index]
            if not _is_database(target):
                return func(*args, **kwargs)
            tr = target.create_transaction()
            call_args = (*args[:index], tr, *args[index + 1 :])
        started = time.perf_counter()
        while True:
            try:
                result = func(*call_args, **kwargs)
                tr.commit().wait()
                metrics.transaction_seconds.observe(time.perf_counter() - started)
                return result
            except FDBError as error:
                tr.on_error(error).wait()  # raises unless the error is retryable
                metrics.retried(error.code)

    return wrapper
