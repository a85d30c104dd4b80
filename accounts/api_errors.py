"""AccountError -> the API's problem+json error (401s carry their Bearer challenge)."""

from __future__ import annotations

from accounts.errors import AccountError
from core.problems import ApiError, field_errors


def api_error(error: AccountError) -> ApiError:
    headers: dict[str, str] = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="coditect", error="{error.code}"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    errors = field_errors(error.attr, error.code, error.detail)
    return ApiError(error.status, error.code, error.detail, errors, headers=headers)
