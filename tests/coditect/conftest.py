import pytest
from django.test import Client


@pytest.fixture
def api_client() -> Client:
    """A client that returns the 500 response a crash produces instead of re-raising it."""
    return Client(raise_request_exception=False)
