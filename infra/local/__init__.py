"""The embedded local stack: moto, Tansu, the API, the notification poller and a worker on loopback."""
