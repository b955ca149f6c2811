"""Domain helpers shared by runbooks and probes: pure functions over API objects."""
