"""The operations commands (docs/operations.md)."""


def counted(count: int, singular: str, plural: str = "") -> str:
    """``1 tenant``, ``2 tenants``: command output reads as English for every count."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
