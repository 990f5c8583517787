"""Base-model weights: the built-in tiny model and the loader shared by every source."""
