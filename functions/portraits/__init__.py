"""The headshot API's follow-up: a portrait's generations start when its training's completion event arrives."""
