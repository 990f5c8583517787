"""S3 object notifications (via SQS) -> conditional job status updates -> lifecycle events."""
