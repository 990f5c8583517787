"""The shared kernel: event contracts, topic names and job state machines. No I/O, no torch."""
