"""The generator worker: consumes generation.requested, writes images and markers to S3."""
