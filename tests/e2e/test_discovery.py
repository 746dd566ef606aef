"""Service discovery with stock `aws servicediscovery` / `aws ecs` commands, boto3's
`servicediscovery` client and an independent DNS client (dnspython) against a real server and
a hollow agent: a bridge-mode service registered in a private DNS namespace answers SRV with
its tasks' host ports, and Cloud Map's exceptions reach boto3 as its own classes."""

from __future__ import annotations

import json
import socket

import boto3
import dns.rdatatype
import dns.resolver
import pytest

from conftest import REGION, run_aws, start_hollow_agent, wait_for

CLUSTER = "discovery"


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def srv_answers(port: int, name: str) -> set[tuple[int, str]]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    try:
        answer = resolver.resolve(name, dns.rdatatype.SRV, lifetime=5)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()
    return {(r.port, r.target.to_text()) for r in answer}


def test_aws_cli_registers_a_service_that_resolves_through_the_agent(
        aws, berth_server, start_berth, endpoint, server_cli_env):
    aws("ecs", "create-cluster", "--cluster-name", CLUSTER)
    dns_port = free_port()
    start_hollow_agent(start_berth, berth_server, CLUSTER,
                       "--dns-listen", f"127.0.0.1:{dns_port}")

    op = aws("servicediscovery", "create-private-dns-namespace", "--name", "shop.berth",
             "--vpc", "vpc-none")["OperationId"]
    operation = aws("servicediscovery", "get-operation", "--operation-id", op)["Operation"]
    assert operation["Status"] == "SUCCESS"
    namespace = operation["Targets"]["NAMESPACE"]
    service = aws("servicediscovery", "create-service", "--name", "cart",
                  "--namespace-id", namespace,
                  "--dns-config", "DnsRecords=[{Type=SRV,TTL=5}]",
                  "--health-check-custom-config", "FailureThreshold=1")["Service"]

    aws("ecs", "register-task-definition", "--family", "cart", "--container-definitions",
        json.dumps([{"name": "cart", "image": "cart:1", "memory": 32,
                     "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]))
    created = aws("ecs", "create-service", "--cluster", CLUSTER, "--service-name", "cart",
                  "--task-definition", "cart", "--desired-count", "3",
                  "--service-registries",
                  f"registryArn={service['Arn']},containerName=cart,containerPort=8080")
    assert created["service"]["serviceRegistries"][0]["registryArn"] == service["Arn"]

    def running():
        arns = aws("ecs", "list-tasks", "--cluster", CLUSTER,
                   "--service-name", "cart")["taskArns"]
        if len(arns) != 3:
            return None
        tasks = aws("ecs", "describe-tasks", "--cluster", CLUSTER, "--tasks", *arns)["tasks"]
        if not all(t["lastStatus"] == "RUNNING" for t in tasks):
            return None
        return tasks

    tasks = wait_for("three RUNNING tasks", running)
    want = {(t["containers"][0]["networkBindings"][0]["hostPort"],
             f"{t['taskArn'].rsplit('/', 1)[1]}.cart.shop.berth.") for t in tasks}
    wait_for("SRV answers naming the three host ports",
             lambda: srv_answers(dns_port, "cart.shop.berth") == want, timeout=10)

    # DiscoverInstances is sent to `data-<endpoint>` unless host prefixes are off, as they
    # must be with an endpoint override (the README says so).
    discovered = run_aws(endpoint, {**server_cli_env, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"},
                         ("servicediscovery", "discover-instances", "--namespace-name",
                          "shop.berth", "--service-name", "cart"))
    assert discovered.returncode == 0, discovered.stderr
    found = discovered.json()["Instances"]
    assert {int(i["Attributes"]["AWS_INSTANCE_PORT"]) for i in found} == {p for p, _ in want}
    assert all(i["Attributes"]["ECS_SERVICE_NAME"] == "cart" for i in found)


def test_boto3_servicediscovery_gets_cloud_maps_exceptions(berth_server):
    sd = boto3.session.Session(
        aws_access_key_id=berth_server.admin.access_key_id,
        aws_secret_access_key=berth_server.admin.secret_access_key,
        region_name=REGION,
    ).client("servicediscovery", endpoint_url=berth_server.endpoint)
    with pytest.raises(sd.exceptions.NamespaceNotFound):
        sd.get_namespace(Id="ns-missing")
    with pytest.raises(sd.exceptions.ServiceNotFound):
        sd.get_service(Id="srv-missing")
    with pytest.raises(sd.exceptions.InvalidInput):
        sd.create_private_dns_namespace(Name="not a name", Vpc="vpc-none")
    op = sd.create_http_namespace(Name="internal")["OperationId"]
    namespace = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
    with pytest.raises(sd.exceptions.NamespaceAlreadyExists):
        sd.create_http_namespace(Name="internal")
    service = sd.create_service(Name="api", NamespaceId=namespace)["Service"]
    listed = sd.list_services(
        Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace], "Condition": "EQ"}])
    assert [s["Id"] for s in listed["Services"]] == [service["Id"]]
    names = [n["Name"] for n in sd.list_namespaces()["Namespaces"]]
    assert "internal" in names
    with pytest.raises(sd.exceptions.ResourceInUse):
        sd.delete_namespace(Id=namespace)
    sd.delete_service(Id=service["Id"])
    sd.delete_namespace(Id=namespace)
    with pytest.raises(sd.exceptions.NamespaceNotFound):
        sd.get_namespace(Id=namespace)
