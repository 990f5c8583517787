"""Long-running consumers: the consumer loop, the generator (and later the trainer), base-model loading."""
