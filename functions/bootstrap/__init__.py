"""The deployment's bootstrap: the Kafka topics, made by a CloudFormation custom resource on every deploy."""
