# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The fleet inventory's I/O: read a project's containers from Docker or its instances from EC2.

Each function returns plain, JSON-serialisable data (the inventory cache stores it) and turns every
failure into an AnsibleParserError that says how to fix it, raised from the library's exception so that
Ansible appends its message (the cause) to ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleParserError
from ansible_collections.cloudpatterns.mysql.plugins.plugin_utils._fleet import (
    LABEL_PROJECT,
    TAG_PROJECT,
)

try:
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException
except ImportError:
    docker = None

try:
    import boto3
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )
except ImportError:
    boto3 = None

# The instance fields the inventory reads; the rest (datetimes included) stays out of the cache.
_INSTANCE_FIELDS = (
    "InstanceId",
    "InstanceType",
    "PrivateIpAddress",
    "PublicIpAddress",
    "Tags",
)


def fetch_docker(project: str, docker_host: str) -> dict[str, list[dict[str, Any]]]:
    """The project's running containers and its networks, as the Docker API inspects them."""
    if docker is None:
        raise AnsibleParserError(
            "The docker backend needs the Docker SDK for Python: `pip install docker` into the Python that "
            "runs Ansible."
        )
    label = {"label": f"{LABEL_PROJECT}={project}"}
    try:
        client = docker.DockerClient(base_url=docker_host)
        try:
            containers = client.containers.list(
                filters={**label, "status": "running"}, ignore_removed=True
            )
            networks = client.networks.list(filters=label)
            return {
                "containers": [container.attrs for container in containers],
                "networks": [network.attrs for network in networks],
            }
        finally:
            client.close()
    except (DockerException, RequestException) as err:
        raise AnsibleParserError(
            f"The Docker engine at {docker_host} does not answer. Is the Docker engine running? Start "
            "it (`systemctl start docker`, or `nohup dockerd >/var/log/dockerd.log 2>&1 &` on a machine "
            "without systemd), or set docker_host in the inventory file (or DOCKER_HOST) to its address"
        ) from err


def fetch_aws(
    project: str, regions: Sequence[str], profile: str | None, endpoint_url: str | None
) -> dict[str, list[dict[str, Any]]]:
    """The project's running instances per region (only the fields the inventory reads)."""
    if boto3 is None:
        raise AnsibleParserError(
            "The aws backend needs boto3: `pip install boto3` into the Python that runs Ansible."
        )
    filters = [
        {"Name": f"tag:{TAG_PROJECT}", "Values": [project]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    found: dict[str, list[dict[str, Any]]] = {}
    for region in regions:
        try:
            ec2 = boto3.session.Session(profile_name=profile or None).client(
                "ec2", region_name=region, endpoint_url=endpoint_url or None
            )
            pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
            found[region] = [
                {
                    field: instance[field]
                    for field in _INSTANCE_FIELDS
                    if field in instance
                }
                for page in pages
                for reservation in page["Reservations"]
                for instance in reservation["Instances"]
            ]
        except (BotoCoreError, ClientError) as err:
            raise _aws_failure(err, region) from err
    return found


def _aws_failure(err: Exception, region: str) -> AnsibleParserError:
    if isinstance(err, ProfileNotFound):
        return AnsibleParserError(
            "Unknown AWS profile: set aws_profile in the inventory file (or AWS_PROFILE) to a profile of "
            "~/.aws/config, or unset it to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return AnsibleParserError(
            "No usable AWS credentials: set AWS_PROFILE (or aws_profile in the inventory file), or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary credentials)"
        )
    if isinstance(err, ClientError):
        return AnsibleParserError(
            f"AWS refused to list the instances in {region}: check that the credentials are valid and "
            "allow ec2:DescribeInstances, and that the region is enabled for the account"
        )
    return AnsibleParserError(
        f"Cannot list the EC2 instances in {region}: check the region name, the network, and "
        "endpoint_url (AWS_ENDPOINT_URL) if you point at an AWS emulator"
    )
