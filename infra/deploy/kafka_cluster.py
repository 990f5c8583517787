"""Kafka for the deployment: MSK (serverless or provisioned) or a bring-your-own cluster, how clients reach
and authenticate to it, and the IAM its clients need.

CloudFormation has no attribute for an MSK cluster's bootstrap brokers, so clients get the cluster's ARN and ask
the `kafka` API (GetBootstrapBrokers) once per process (`infra.kafka_auth.resolve_kafka_settings`).
"""

from __future__ import annotations

import json

from events.topics import ALL_TOPICS
from infra.deploy import catalog
from infra.deploy.cfn import ACCOUNT, Fragment, Json, get_att, ref, sub, tags
from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.network import private_subnet_ids, security_group_id

BOOTSTRAP_SERVERS_PARAMETER = "KafkaBootstrapServers"
SECRET_ARN_PARAMETER = "KafkaSecretArn"
BROKER_INSTANCE_TYPE_PARAMETER = "KafkaBrokerInstanceType"
BROKER_COUNT_PARAMETER = "KafkaBrokerCount"
KAFKA_VERSION_PARAMETER = "KafkaVersion"
SECRET_KEY = "KafkaCredentialsKey"

IAM_MECHANISM = "OAUTHBEARER"
SCRAM_MECHANISM = "SCRAM-SHA-512"


def cluster_name(config: DeployConfig) -> str:
    """The MSK cluster's name."""
    return f"{config.prefix}-kafka"


def uses_iam(config: DeployConfig) -> bool:
    """Whether clients authenticate with IAM (MSK Serverless) rather than SCRAM."""
    return config.kafka is KafkaMode.MSK_SERVERLESS


def consumer_groups(config: DeployConfig) -> list[str]:
    """Every consumer group the service's settings name (workers, lifecycle functions)."""
    settings = config.settings
    return sorted({getattr(settings, name) for name in type(settings).model_fields if name.endswith("_consumer_group")})


def kafka_fragment(config: DeployConfig) -> Fragment:
    """The cluster (or the parameters naming an external one), its credentials secret when SCRAM."""
    fragment = Fragment()
    if config.kafka is KafkaMode.EXTERNAL:
        fragment.parameter(
            BOOTSTRAP_SERVERS_PARAMETER,
            "bring-your-own Kafka: bootstrap servers host:port,host:port (SASL_SSL, SCRAM-SHA-512), reachable "
            "from the private subnets",
            AllowedPattern=r"^[^,\s]+(,[^,\s]+)*$",
        )
        fragment.parameter(
            SECRET_ARN_PARAMETER,
            'bring-your-own Kafka: ARN of a Secrets Manager secret {"username": ..., "password": ...} (SCRAM)',
            AllowedPattern=r"^arn:aws[a-z-]*:secretsmanager:.+$",
        )
        return fragment

    subnets_and_groups = {
        "SubnetIds": private_subnet_ids(),
        "SecurityGroups": [security_group_id(catalog.KAFKA_SECURITY_GROUP)],
    }
    if config.kafka is KafkaMode.MSK_SERVERLESS:
        fragment.add(
            catalog.KAFKA_CLUSTER,
            "AWS::MSK::ServerlessCluster",
            {
                "ClusterName": cluster_name(config),
                "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
                "VpcConfigs": [subnets_and_groups],
                "Tags": {"Name": cluster_name(config)},
            },
        )
    else:
        _provisioned(fragment, config, subnets_and_groups)
    fragment.output("KafkaClusterArn", ref(catalog.KAFKA_CLUSTER), "the MSK cluster (GetBootstrapBrokers takes it)")
    return fragment


def _provisioned(fragment: Fragment, config: DeployConfig, subnets_and_groups: Json) -> None:
    fragment.parameter(BROKER_INSTANCE_TYPE_PARAMETER, "MSK broker instance type", Default="kafka.m7g.large")
    # MSK places brokers evenly over the client subnets: with two AZs the count must be even, so four is the
    # least that holds three replicas of every partition (the bootstrap's replication factor).
    fragment.parameter(
        BROKER_COUNT_PARAMETER,
        "MSK broker count (a multiple of the two AZs, at least the replication factor 3)",
        Type="Number",
        Default="4",
        AllowedValues=["4", "6", "8", "10", "12"],
    )
    fragment.parameter(KAFKA_VERSION_PARAMETER, "Apache Kafka version of the MSK brokers", Default="3.6.0")
    fragment.add(
        catalog.KAFKA_CLUSTER,
        "AWS::MSK::Cluster",
        {
            "ClusterName": cluster_name(config),
            "KafkaVersion": ref(KAFKA_VERSION_PARAMETER),
            "NumberOfBrokerNodes": ref(BROKER_COUNT_PARAMETER),
            "BrokerNodeGroupInfo": {
                "InstanceType": ref(BROKER_INSTANCE_TYPE_PARAMETER),
                "ClientSubnets": subnets_and_groups["SubnetIds"],
                "SecurityGroups": subnets_and_groups["SecurityGroups"],
                "StorageInfo": {"EBSStorageInfo": {"VolumeSize": 100}},
            },
            "ClientAuthentication": {"Sasl": {"Scram": {"Enabled": True}}, "Unauthenticated": {"Enabled": False}},
            "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True}},
            "Tags": {"Name": cluster_name(config)},
        },
    )
    # MSK refuses SCRAM secrets encrypted with the AWS-managed key: a key of our own, and the secret's name
    # must start with AmazonMSK_.
    fragment.add(
        SECRET_KEY,
        "AWS::KMS::Key",
        {
            "Description": f"{config.prefix}: encrypts the MSK SCRAM credentials",
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # The account administers the key; the roles' own policies grant its use (least privilege).
                        "Sid": "AccountAdministers",
                        "Effect": "Allow",
                        "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            },
            "Tags": tags(Name=f"{config.prefix}-kafka-credentials"),
        },
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
    )
    fragment.add(
        catalog.KAFKA_SECRET,
        "AWS::SecretsManager::Secret",
        {
            "Name": f"AmazonMSK_{config.prefix}-kafka",
            "Description": f"{config.prefix}: SASL/SCRAM credentials of the MSK cluster",
            "KmsKeyId": ref(SECRET_KEY),
            "GenerateSecretString": {
                "SecretStringTemplate": json.dumps({"username": config.prefix}),
                "GenerateStringKey": "password",
                "PasswordLength": 32,
                # SCRAM and the JSON both take any character; punctuation only makes the secret awkward to paste.
                "ExcludePunctuation": True,
            },
        },
        # The credentials belong to the stack's own cluster, which goes with the stack: so do they.
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
    )
    fragment.add(
        "KafkaScramSecretAssociation",
        "AWS::MSK::BatchScramSecret",
        {"ClusterArn": ref(catalog.KAFKA_CLUSTER), "SecretArnList": [ref(catalog.KAFKA_SECRET)]},
    )
    fragment.output("KafkaSecretArn", ref(catalog.KAFKA_SECRET), "the SCRAM credentials of the MSK cluster")


def secret_arn(config: DeployConfig) -> Json | None:
    """The SCRAM credentials secret (created, or given by parameter), or None with IAM authentication."""
    if config.kafka is KafkaMode.MSK_PROVISIONED:
        return ref(catalog.KAFKA_SECRET)
    if config.kafka is KafkaMode.EXTERNAL:
        return ref(SECRET_ARN_PARAMETER)
    return None


def kafka_client_environment(config: DeployConfig) -> dict[str, Json | str]:
    """The LF_KAFKA_* environment variables every function and worker gets to reach the brokers."""
    environment: dict[str, Json | str] = {
        "LF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LF_KAFKA_SASL_MECHANISM": IAM_MECHANISM if uses_iam(config) else SCRAM_MECHANISM,
        "LF_KAFKA_PARTITIONS": str(config.kafka_partitions),
        "LF_KAFKA_REPLICATION_FACTOR": str(config.kafka_replication_factor),
    }
    if config.kafka is KafkaMode.EXTERNAL:
        environment["LF_KAFKA_BOOTSTRAP_SERVERS"] = ref(BOOTSTRAP_SERVERS_PARAMETER)
    else:
        environment["LF_KAFKA_CLUSTER_ARN"] = ref(catalog.KAFKA_CLUSTER)
    secret = secret_arn(config)
    if secret is not None:
        environment["LF_KAFKA_SASL_SECRET_ARN"] = secret
    return environment


def _cluster_arn_part(kind: str, name: str) -> Json:
    # arn:...:cluster/NAME/UUID -> arn:...:{kind}/NAME/UUID/{name}: MSK IAM's topic and group resources.
    parts = {"Fn::Split": ["/", ref(catalog.KAFKA_CLUSTER)]}
    return sub(
        f"arn:${{AWS::Partition}}:kafka:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/${{Name}}/${{Uuid}}/{name}",
        Name={"Fn::Select": [1, parts]},
        Uuid={"Fn::Select": [2, parts]},
    )


def kafka_client_statements(config: DeployConfig) -> list[Json]:
    """IAM policy statements a Kafka client needs (MSK IAM: kafka-cluster:*; SCRAM: read the secret)."""
    statements: list[Json] = []
    if config.kafka is not KafkaMode.EXTERNAL:
        statements.append(
            {
                "Sid": "FindBrokers",
                "Effect": "Allow",
                "Action": ["kafka:GetBootstrapBrokers", "kafka:DescribeCluster", "kafka:DescribeClusterV2"],
                "Resource": ref(catalog.KAFKA_CLUSTER),
            }
        )
    if uses_iam(config):
        statements += [
            {
                "Sid": "KafkaConnect",
                "Effect": "Allow",
                "Action": [
                    "kafka-cluster:Connect",
                    "kafka-cluster:DescribeCluster",
                    "kafka-cluster:DescribeClusterDynamicConfiguration",
                    # The producers are idempotent (acks=all, enable_idempotence).
                    "kafka-cluster:WriteDataIdempotently",
                ],
                "Resource": ref(catalog.KAFKA_CLUSTER),
            },
            {
                "Sid": "KafkaTopics",
                "Effect": "Allow",
                # CreateTopic: the bootstrap makes the topics; every client may, since they are the same few
                # topics, and it keeps one statement for all clients.
                "Action": [
                    "kafka-cluster:DescribeTopic",
                    "kafka-cluster:DescribeTopicDynamicConfiguration",
                    "kafka-cluster:CreateTopic",
                    "kafka-cluster:ReadData",
                    "kafka-cluster:WriteData",
                ],
                "Resource": [_cluster_arn_part("topic", topic) for topic in ALL_TOPICS],
            },
            {
                "Sid": "KafkaGroups",
                "Effect": "Allow",
                "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                "Resource": [_cluster_arn_part("group", group) for group in consumer_groups(config)],
            },
        ]
        return statements
    statements.append(
        {
            "Sid": "KafkaCredentials",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": secret_arn(config),
        }
    )
    if config.kafka is KafkaMode.MSK_PROVISIONED:
        key_statement: Json = {"Resource": get_att(SECRET_KEY, "Arn")}
    else:
        # A bring-your-own secret's key is not known here: any key, but only to decrypt through Secrets Manager.
        key_statement = {
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": sub("secretsmanager.${AWS::Region}.amazonaws.com"),
                    "kms:CallerAccount": ACCOUNT,
                }
            },
        }
    statements.append({"Sid": "KafkaCredentialsKey", "Effect": "Allow", "Action": "kms:Decrypt", **key_statement})
    return statements


def kafka_event_source(config: DeployConfig, topic: str, group_id: str) -> Json:
    """The properties of an AWS::Lambda::EventSourceMapping that reads `topic` as consumer group `group_id`
    (MSK: EventSourceArn + AmazonManagedKafkaEventSourceConfig; external: SelfManagedEventSource,
    SourceAccessConfigurations with the SCRAM secret, subnets and security group)."""
    # A new group starts from the oldest record: nothing published before the mapping existed is skipped.
    properties: Json = {"Topics": [topic], "StartingPosition": "TRIM_HORIZON"}
    secret = secret_arn(config)
    scram = [{"Type": "SASL_SCRAM_512_AUTH", "URI": secret}] if secret is not None else []
    if config.kafka is not KafkaMode.EXTERNAL:
        properties["EventSourceArn"] = ref(catalog.KAFKA_CLUSTER)
        properties["AmazonManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": group_id}
        if scram:
            properties["SourceAccessConfigurations"] = scram
        return properties
    properties["SelfManagedEventSource"] = {
        "Endpoints": {"KafkaBootstrapServers": {"Fn::Split": [",", ref(BOOTSTRAP_SERVERS_PARAMETER)]}}
    }
    properties["SelfManagedKafkaEventSourceConfig"] = {"ConsumerGroupId": group_id}
    properties["SourceAccessConfigurations"] = [
        *scram,
        *({"Type": "VPC_SUBNET", "URI": sub("subnet:${Subnet}", Subnet=subnet)} for subnet in private_subnet_ids()),
        {
            "Type": "VPC_SECURITY_GROUP",
            "URI": sub("security_group:${Group}", Group=security_group_id(catalog.FUNCTIONS_SECURITY_GROUP)),
        },
    ]
    return properties
