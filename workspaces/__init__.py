"""Workspace sessions: create, read, update, delete, fork, related sessions and their indexes."""
