"""Outcomes, rewards, anti-gaming findings and update proposals (proposals only) arrive in their issue."""
