"""FoundationDB's hard limits, enforced by every engine with FoundationDB's codes."""

KEY_SIZE_LIMIT = 10_000  # 2102 key_too_large
VALUE_SIZE_LIMIT = 100_000  # 2103 value_too_large
TRANSACTION_SIZE_LIMIT = 10_000_000  # 2101 transaction_too_large
TRANSACTION_AGE_LIMIT_S = 5.0  # 1007 transaction_too_old
SYSTEM_KEYS_BEGIN = b"\xff"  # user keys sort strictly below this (2004)
VERSIONSTAMP_LENGTH = 10
