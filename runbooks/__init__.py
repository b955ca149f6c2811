"""Versioned runbooks and read-only status probes. Imports only ``bot.sdk`` (DESIGN.md §2)."""
