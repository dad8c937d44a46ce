"""Alerts: budget threshold crossings and anomalies, sent to sinks off the call's path."""
