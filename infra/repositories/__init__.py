"""DynamoDB repositories: every item carries its tenant, every status write is conditional."""
