"""The GPU workers' consumer-group lag, published to CloudWatch every minute for their services to scale on."""
