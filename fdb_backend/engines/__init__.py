"""Storage engines: embedded (SQLite, one machine) and cluster (FoundationDB)."""
