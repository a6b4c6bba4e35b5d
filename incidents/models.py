"""Signals, detection rules, evidence, confidence, promotion and the incident lifecycle: next issue."""
