"""A LocalStack provider that serves DynamoDB from moto's backend, registered as `dynamodb:moto`.

LocalStack's default DynamoDB provider runs DynamoDB Local on a JDK it downloads at first use, which cannot
happen on an offline machine. Every operation of the generated API class raises NotImplementedError, so
LocalStack's moto fallback dispatcher answers all of them from moto (which LocalStack ships and already uses
for other services). S3 and SQS stay LocalStack's own providers.
"""

from __future__ import annotations

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.services.plugins import Service, aws_provider


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    """The DynamoDB service: every operation dispatched to moto."""
    from localstack.services.moto import MotoFallbackDispatcher

    return Service.for_provider(DynamodbApi(), dispatch_table_factory=MotoFallbackDispatcher)
