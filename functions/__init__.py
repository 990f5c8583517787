"""Lambda-style handlers: thin `handler(event, context)` entry points over plain functions."""
