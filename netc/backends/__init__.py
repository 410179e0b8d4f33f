"""Backends: functions from the graph IR to artifacts (modules, source, diagrams, tables)."""
