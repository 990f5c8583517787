"""Adapters to S3, DynamoDB, SQS and Kafka; settings; resources and bootstrap; the embedded local stack."""
