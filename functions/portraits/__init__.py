"""Seed 004's follow-up: a portrait's generations start when its training's completion event arrives."""
