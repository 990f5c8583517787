"""Signed webhook deliveries of job events, retried on a persisted schedule."""
