"""The VPC the functions, the brokers and the GPU workers share.

Two availability zones, each with a public subnet (the NAT gateway's, and nothing else) and a private one (every
function, broker and GPU instance). S3 and DynamoDB are reached through gateway endpoints, so images, adapters and
job records never cross the NAT (which bills per GB); only the small remainder does (ECR pulls, CloudWatch, STS,
Secrets Manager, the MSK API, webhook deliveries).
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.deploy import catalog
from infra.deploy.cfn import Fragment, Json, get_att, ref, sub, tags
from infra.deploy.config import DeployConfig

VPC_CIDR = "10.40.0.0/16"
PUBLIC_SUBNETS = ("PublicSubnetA", "PublicSubnetB")
_PUBLIC_CIDRS = ("10.40.0.0/24", "10.40.1.0/24")
# Private subnets are wide: every Lambda ENI, broker and GPU instance takes addresses from them.
_PRIVATE_CIDRS = ("10.40.16.0/20", "10.40.32.0/20")
INTERNET_GATEWAY = "InternetGateway"
NAT_GATEWAY = "NatGateway"
PRIVATE_ROUTE_TABLE = "PrivateRouteTable"
# The ports MSK serves SASL on: 9098 for IAM (serverless and provisioned), 9096 for SCRAM (provisioned).
KAFKA_IAM_PORT = 9098
KAFKA_SCRAM_PORT = 9096


def _az(index: int) -> Json:
    return {"Fn::Select": [index, {"Fn::GetAZs": ""}]}


def private_subnet_ids() -> list[Json]:
    """Refs of the private subnets, for Lambda VpcConfig, ECS and MSK."""
    return [ref(logical_id) for logical_id in catalog.PRIVATE_SUBNETS]


def security_group_id(logical_id: str) -> Json:
    """The GroupId of one of the security groups (FUNCTIONS_, WORKERS_ or KAFKA_SECURITY_GROUP)."""
    return get_att(logical_id, "GroupId")


def _add_subnets(
    fragment: Fragment, prefix: str, kind: str, logical_ids: Sequence[str], cidrs: Sequence[str], route_table: str
) -> None:
    """One subnet per AZ, each on `route_table`."""
    for index, (logical_id, cidr) in enumerate(zip(logical_ids, cidrs, strict=True)):
        fragment.add(
            logical_id,
            "AWS::EC2::Subnet",
            {
                "VpcId": ref(catalog.VPC),
                "CidrBlock": cidr,
                "AvailabilityZone": _az(index),
                "MapPublicIpOnLaunch": False,
                "Tags": tags(Name=f"{prefix}-{kind}-{'ab'[index]}"),
            },
        )
        fragment.add(
            f"{logical_id}RouteTableAssociation",
            "AWS::EC2::SubnetRouteTableAssociation",
            {"SubnetId": ref(logical_id), "RouteTableId": ref(route_table)},
        )


def network_fragment(config: DeployConfig) -> Fragment:
    """VPC, private subnets (two AZs) with a NAT route out, the security groups (functions, workers, Kafka),
    and the gateway endpoints (S3, DynamoDB) that keep bulk traffic off the NAT."""
    fragment = Fragment()
    prefix = config.prefix
    fragment.add(
        catalog.VPC,
        "AWS::EC2::VPC",
        {
            "CidrBlock": VPC_CIDR,
            # MSK's and the endpoints' private DNS names need both.
            "EnableDnsSupport": True,
            "EnableDnsHostnames": True,
            "Tags": tags(Name=f"{prefix}-vpc"),
        },
    )
    fragment.add(INTERNET_GATEWAY, "AWS::EC2::InternetGateway", {"Tags": tags(Name=f"{prefix}-igw")})
    fragment.add(
        "InternetGatewayAttachment",
        "AWS::EC2::VPCGatewayAttachment",
        {"VpcId": ref(catalog.VPC), "InternetGatewayId": ref(INTERNET_GATEWAY)},
    )
    fragment.add(
        "PublicRouteTable", "AWS::EC2::RouteTable", {"VpcId": ref(catalog.VPC), "Tags": tags(Name=f"{prefix}-public")}
    )
    fragment.add(
        "PublicDefaultRoute",
        "AWS::EC2::Route",
        {
            "RouteTableId": ref("PublicRouteTable"),
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": ref(INTERNET_GATEWAY),
        },
        DependsOn="InternetGatewayAttachment",
    )
    _add_subnets(fragment, prefix, "public", PUBLIC_SUBNETS, _PUBLIC_CIDRS, "PublicRouteTable")

    # One NAT gateway, in the first AZ: about $33/month plus $0.045/GB, against twice that for one per AZ. The
    # trade-off: if that AZ fails, the private subnets lose the internet (ECR pulls, webhooks, CloudWatch) until
    # it is back, although S3 and DynamoDB still answer through the gateway endpoints. For a production that
    # must ride out an AZ outage, add a NAT gateway and a route table per AZ.
    fragment.add("NatElasticIp", "AWS::EC2::EIP", {"Domain": "vpc"}, DependsOn="InternetGatewayAttachment")
    fragment.add(
        NAT_GATEWAY,
        "AWS::EC2::NatGateway",
        {
            "AllocationId": get_att("NatElasticIp", "AllocationId"),
            "SubnetId": ref(PUBLIC_SUBNETS[0]),
            "Tags": tags(Name=f"{prefix}-nat"),
        },
    )
    fragment.add(
        PRIVATE_ROUTE_TABLE,
        "AWS::EC2::RouteTable",
        {"VpcId": ref(catalog.VPC), "Tags": tags(Name=f"{prefix}-private")},
    )
    fragment.add(
        "PrivateDefaultRoute",
        "AWS::EC2::Route",
        {
            "RouteTableId": ref(PRIVATE_ROUTE_TABLE),
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": ref(NAT_GATEWAY),
        },
    )
    _add_subnets(fragment, prefix, "private", catalog.PRIVATE_SUBNETS, _PRIVATE_CIDRS, PRIVATE_ROUTE_TABLE)

    for logical_id, service in (("S3GatewayEndpoint", "s3"), ("DynamoDbGatewayEndpoint", "dynamodb")):
        fragment.add(
            logical_id,
            "AWS::EC2::VPCEndpoint",
            {
                "VpcId": ref(catalog.VPC),
                "ServiceName": sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                "VpcEndpointType": "Gateway",
                "RouteTableIds": [ref(PRIVATE_ROUTE_TABLE)],
            },
        )

    _security_groups(fragment, prefix)
    fragment.output("VpcId", ref(catalog.VPC), "the VPC of the functions, brokers and GPU workers")
    fragment.output(
        "PrivateSubnetIds",
        {"Fn::Join": [",", private_subnet_ids()]},
        "the private subnets (for a bring-your-own cluster's peering or security groups)",
    )
    fragment.output(
        "KafkaClientSecurityGroupIds",
        {
            "Fn::Join": [
                ",",
                [
                    security_group_id(catalog.FUNCTIONS_SECURITY_GROUP),
                    security_group_id(catalog.WORKERS_SECURITY_GROUP),
                ],
            ]
        },
        "the security groups a bring-your-own cluster must admit",
    )
    return fragment


def _security_groups(fragment: Fragment, prefix: str) -> None:
    # Functions and workers only call out (AWS APIs, brokers, webhooks): no ingress at all.
    for logical_id, who in (
        (catalog.FUNCTIONS_SECURITY_GROUP, "the Lambda functions"),
        (catalog.WORKERS_SECURITY_GROUP, "the GPU worker instances"),
    ):
        fragment.add(
            logical_id,
            "AWS::EC2::SecurityGroup",
            {
                "GroupDescription": f"{prefix}: {who} (outbound only)",
                "VpcId": ref(catalog.VPC),
                "SecurityGroupEgress": [
                    {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "AWS APIs, brokers, webhooks"}
                ],
                "Tags": tags(Name=f"{prefix}-{logical_id}"),
            },
        )
    ingress = [
        {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            "SourceSecurityGroupId": security_group_id(source),
            "Description": f"{mechanism} clients: {source}",
        }
        for source in (catalog.FUNCTIONS_SECURITY_GROUP, catalog.WORKERS_SECURITY_GROUP)
        for port, mechanism in ((KAFKA_IAM_PORT, "SASL/IAM"), (KAFKA_SCRAM_PORT, "SASL/SCRAM"))
    ]
    fragment.add(
        catalog.KAFKA_SECURITY_GROUP,
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": f"{prefix}: the MSK brokers",
            "VpcId": ref(catalog.VPC),
            "SecurityGroupIngress": ingress,
            "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "replies"}],
            "Tags": tags(Name=f"{prefix}-{catalog.KAFKA_SECURITY_GROUP}"),
        },
    )
    # Lambda's MSK event source pollers run with the cluster's own security groups, so the group must admit
    # itself; a separate rule because a group cannot name itself inline.
    fragment.add(
        "KafkaSecurityGroupSelfIngress",
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": security_group_id(catalog.KAFKA_SECURITY_GROUP),
            "IpProtocol": "tcp",
            "FromPort": KAFKA_SCRAM_PORT,
            "ToPort": KAFKA_IAM_PORT,
            "SourceSecurityGroupId": security_group_id(catalog.KAFKA_SECURITY_GROUP),
            "Description": "Lambda's MSK event source pollers (they use the cluster's security groups)",
        },
    )
