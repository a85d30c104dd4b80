"""Tenants, users, invitations, passwords, tokens and their families, auth sessions, throttling."""
