"""Plugin registry, heartbeats and the supervisor state machine arrive in their issue."""
