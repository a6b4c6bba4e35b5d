"""Approval requests and decisions (quorum, separation of duties, escalation) arrive with the action flow."""
