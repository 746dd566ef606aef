"""Authentication and authorization with the real clients: every request to berth is signed
(AWS SigV4), and what a key may do is its role's policy.

Covered, each with stock boto3 and/or aws-cli (and berth's own CLI to make credentials):
a key made with `berth credential create` working in both clients; an unknown key
(UnrecognizedClientException), a wrong secret and a date 10 minutes off, either way
(InvalidSignatureException), an unsigned request (MissingAuthenticationTokenException), for
the ECS API and the native `/v1/...` API alike, whose signing name is `berth`; a deleted key
refused from then on; the read-only role (List/Describe, never RunTask); an operator confined
to its cluster; host privileges (privileged, host namespaces and paths, capabilities, devices,
host processes) reserved to admin, the refusal naming the permission; `berth server --tls`
with aws-cli trusting `--ca-bundle <data-dir>/ca.pem`, and refused without it; plain HTTP on
a non-loopback address refused without --insecure.

Requests are signed by botocore itself (the clients, or `botocore.auth.SigV4Auth` for the
native API and the odd dates): never by a signature made here.
"""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from unittest import mock

import botocore.auth
import pytest
from botocore.exceptions import ClientError, SSLError
from conftest import BerthApi, Credentials, aws_cli_path, make_ecs_client, send, sign

ARN = "arn:aws:ecs:us-east-1:000000000000"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def expect_error(code: str, status: int, call, *args, **kwargs) -> str:
    """Calls `call`; it must fail with the AWS error `code` and HTTP `status`. Answers the
    error message."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    e = info.value
    assert e.response["Error"]["Code"] == code, e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
    message = e.response["Error"]["Message"]
    assert message, "the error must say what went wrong"
    return message


def expect_cli_error(r, code: str, operation: str) -> None:
    """aws-cli v1 exits 255 on a service error and names the error code and operation."""
    assert r.returncode == 255, (r.returncode, r.stdout, r.stderr)
    assert f"An error occurred ({code}) when calling the {operation} operation" in r.stderr, (
        r.stderr
    )
    assert r.stdout.strip() == ""


def shifted_clock(minutes: float):
    """Patches botocore's signer's clock (`botocore.auth.get_current_datetime`) by `minutes`:
    requests are signed, by botocore, with an X-Amz-Date that far from now."""
    real = botocore.auth.get_current_datetime

    def shifted(*args, **kwargs):
        return real(*args, **kwargs) + datetime.timedelta(minutes=minutes)

    return mock.patch.object(botocore.auth, "get_current_datetime", shifted)


def ecs_json(target: str, body: dict | None = None) -> tuple[bytes, dict[str, str]]:
    """An ECS JSON request's body and headers, as boto3 sends them."""
    return json.dumps(body or {}).encode(), {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"{ECS_TARGET}.{target}",
    }


def container(**extra) -> dict:
    return {"name": "main", "image": "busybox", "memory": 32, "command": ["true"], **extra}


# --------------------------------------------------------------------------------------------
# Keys that work
# --------------------------------------------------------------------------------------------


def test_a_created_key_works_with_boto3_and_the_aws_cli(
    berth_server, ecs, new_credential, ecs_at, aws_at, berth_cli
):
    endpoint = berth_server.endpoint
    ecs.create_cluster(clusterName="alpha")

    # The admin credential berth wrote, as aws-cli reads it (AWS_SHARED_CREDENTIALS_FILE).
    r = aws_at(endpoint, "ecs", "list-clusters")
    assert r.returncode == 0, r.stderr
    assert r.json()["clusterArns"] == [f"{ARN}:cluster/alpha"]

    # A key made with `berth credential create`, in both clients.
    reader = new_credential(berth_server, "reader", "read-only")
    assert reader.access_key_id != berth_server.admin.access_key_id
    assert ecs_at(endpoint, credentials=reader).list_clusters()["clusterArns"] == [
        f"{ARN}:cluster/alpha"
    ]
    r = aws_at(
        endpoint, "ecs", "describe-clusters", "--clusters", "alpha", credentials_file=reader.file
    )
    assert r.returncode == 0, r.stderr
    assert r.json()["clusters"][0]["clusterName"] == "alpha"

    # `berth credential list` shows both keys, never a secret.
    admin_file = str(berth_server.admin_credentials_file)
    r = berth_cli(
        "credential", "list", "-o", "json", "--endpoint", endpoint, "--credentials-file", admin_file
    )
    assert r.returncode == 0, r.stderr
    listed = {c["accessKeyId"]: c for c in json.loads(r.stdout)["credentials"]}
    assert listed[reader.access_key_id]["name"] == "reader"
    assert listed[reader.access_key_id]["role"] == "read-only"
    assert listed[berth_server.admin.access_key_id]["role"] == "admin"
    assert reader.secret_access_key not in r.stdout
    assert berth_server.admin.secret_access_key not in r.stdout
    # For people, a table: one line per key, with its name and role, and no secret either.
    r = berth_cli("credential", "list", "--endpoint", endpoint, "--credentials-file", admin_file)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["ACCESS", "KEY", "NAME", "KIND"], r.stdout
    reader_line = next(line for line in lines if line.startswith(reader.access_key_id))
    assert reader_line.split()[1:4] == ["reader", "user", "read-only"], reader_line
    assert reader.secret_access_key not in r.stdout

    # Deleted: refused from then on, as a key the server does not know.
    r = berth_cli(
        "credential",
        "delete",
        reader.access_key_id,
        "--endpoint",
        endpoint,
        "--credentials-file",
        admin_file,
    )
    assert r.returncode == 0, r.stderr
    expect_error(
        "UnrecognizedClientException", 400, ecs_at(endpoint, credentials=reader).list_clusters
    )
    r = aws_at(endpoint, "ecs", "list-clusters", credentials_file=reader.file)
    expect_cli_error(r, "UnrecognizedClientException", "ListClusters")


def test_the_native_api_is_signed_for_berth(berth_server):
    admin = berth_server.admin
    api = berth_server.api()
    listed = api.get_json("/v1/credentials")["credentials"]
    assert admin.access_key_id in [c["accessKeyId"] for c in listed]

    # Only the health check answers anyone.
    health = send("GET", f"{berth_server.endpoint}/v1/health", {})
    assert health.status == 200, health

    unsigned = send("GET", f"{berth_server.endpoint}/v1/credentials", {})
    assert (unsigned.status, unsigned.error_type) == (403, "MissingAuthenticationTokenException")

    # Signed for `ecs` (the ECS API's signing name) instead of `berth`.
    wrong = BerthApi(berth_server.endpoint, admin, service="ecs").request("GET", "/v1/credentials")
    assert (wrong.status, wrong.error_type) == (400, "InvalidSignatureException"), wrong

    stranger = Credentials("AKIDNOSUCHKEY0000000", admin.secret_access_key)
    unknown = BerthApi(berth_server.endpoint, stranger).request("GET", "/v1/credentials")
    assert (unknown.status, unknown.error_type) == (400, "UnrecognizedClientException"), unknown

    bad = Credentials(admin.access_key_id, admin.secret_access_key + "x")
    mismatch = BerthApi(berth_server.endpoint, bad).request("GET", "/v1/credentials")
    assert (mismatch.status, mismatch.error_type) == (400, "InvalidSignatureException"), mismatch

    # The body is signed too: a body changed after signing is refused.
    body = json.dumps({"name": "x", "role": "admin"}).encode()
    url = f"{berth_server.endpoint}/v1/credentials"
    prepared = sign("POST", url, admin, body=body, headers={"Content-Type": "application/json"})
    headers = dict(prepared.headers.items())
    tampered = send("POST", prepared.url, headers, body.replace(b'"x"', b'"y"'))
    assert (tampered.status, tampered.error_type) == (400, "InvalidSignatureException"), tampered
    assert "y" not in [c["name"] for c in api.get_json("/v1/credentials")["credentials"]]


# --------------------------------------------------------------------------------------------
# Keys that do not
# --------------------------------------------------------------------------------------------


def test_an_unknown_key_is_unrecognized(berth_server, ecs_at, aws_at, tmp_path):
    stranger = Credentials("AKIDNOSUCHKEY0000000", "not-a-secret-berth-knows").write(
        tmp_path / "stranger.credentials"
    )
    message = expect_error(
        "UnrecognizedClientException",
        400,
        ecs_at(berth_server.endpoint, credentials=stranger).list_clusters,
    )
    assert "security token included in the request is invalid" in message, message
    r = aws_at(berth_server.endpoint, "ecs", "list-clusters", credentials_file=stranger.file)
    expect_cli_error(r, "UnrecognizedClientException", "ListClusters")


def test_a_wrong_secret_is_an_invalid_signature(berth_server, ecs_at, aws_at, tmp_path):
    admin = berth_server.admin
    forged = Credentials(admin.access_key_id, admin.secret_access_key[::-1] + "0").write(
        tmp_path / "forged.credentials"
    )
    expect_error(
        "InvalidSignatureException",
        400,
        ecs_at(berth_server.endpoint, credentials=forged).create_cluster,
        clusterName="forged",
    )
    r = aws_at(
        berth_server.endpoint,
        "ecs",
        "create-cluster",
        "--cluster-name",
        "forged",
        credentials_file=forged.file,
    )
    expect_cli_error(r, "InvalidSignatureException", "CreateCluster")
    # Nothing was done.
    assert ecs_at(berth_server.endpoint).list_clusters()["clusterArns"] == []


@pytest.mark.parametrize("minutes", [-10, 10])
def test_a_date_ten_minutes_off_is_an_invalid_signature(berth_server, ecs_at, minutes):
    endpoint, admin = berth_server.endpoint, berth_server.admin
    ecs = ecs_at(endpoint)
    with shifted_clock(minutes):
        message = expect_error(
            "InvalidSignatureException", 400, ecs.create_cluster, clusterName="stale"
        )
        # The same for the native API.
        answer = berth_server.api().request("GET", "/v1/credentials")
    assert (answer.status, answer.error_type) == (400, "InvalidSignatureException"), answer
    assert "Signature" in message or "signature" in message or "date" in message.lower(), message

    # Built by hand from botocore's signer, with a fixed X-Amz-Date 10 minutes off: the same.
    body, headers = ecs_json("ListClusters")
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    fixed = when.replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: fixed):
        prepared = sign("POST", f"{endpoint}/", admin, service="ecs", body=body, headers=headers)
    assert prepared.headers["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    r = send("POST", prepared.url, dict(prepared.headers.items()), body)
    assert (r.status, r.error_type) == (400, "InvalidSignatureException"), r

    # Within five minutes is fine (clocks drift), and nothing stale was done.
    with shifted_clock(-2 if minutes < 0 else 2):
        assert ecs.list_clusters()["clusterArns"] == []


def test_an_unsigned_request_is_missing_its_token(berth_server, aws_at, cli_env):
    unsigned = make_ecs_client(berth_server.endpoint, None)
    expect_error("MissingAuthenticationTokenException", 403, unsigned.list_clusters)
    expect_error(
        "MissingAuthenticationTokenException", 403, unsigned.create_cluster, clusterName="anon"
    )
    r = aws_at(berth_server.endpoint, "ecs", "list-clusters", "--no-sign-request")
    expect_cli_error(r, "MissingAuthenticationTokenException", "ListClusters")
    # And plain HTTP, as a curl user would try it.
    body, headers = ecs_json("ListClusters")
    answer = send("POST", f"{berth_server.endpoint}/", headers, body)
    assert (answer.status, answer.error_type) == (403, "MissingAuthenticationTokenException")
    assert berth_server.api().get_json("/v1/credentials")  # the server is fine


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------


def test_read_only_lists_and_describes_but_cannot_run_tasks(
    berth_server, ecs, new_credential, ecs_at, aws_at
):
    endpoint = berth_server.endpoint
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="web", containerDefinitions=[container()])
    reader = new_credential(berth_server, "auditor", "read-only")
    ro = ecs_at(endpoint, credentials=reader)

    assert ro.list_clusters()["clusterArns"] == [f"{ARN}:cluster/prod"]
    assert ro.describe_clusters(clusters=["prod"])["clusters"][0]["status"] == "ACTIVE"
    assert ro.list_task_definitions()["taskDefinitionArns"] == [f"{ARN}:task-definition/web:1"]
    assert ro.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 1
    assert ro.list_tasks(cluster="prod")["taskArns"] == []
    assert ro.list_container_instances(cluster="prod")["containerInstanceArns"] == []

    message = expect_error(
        "AccessDeniedException", 403, ro.run_task, cluster="prod", taskDefinition="web"
    )
    assert "ecs:RunTask" in message, message
    assert "user/auditor" in message, message
    for call, kwargs in [
        (ro.create_cluster, {"clusterName": "mine"}),
        (ro.register_task_definition, {"family": "x", "containerDefinitions": [container()]}),
        (ro.delete_cluster, {"cluster": "prod"}),
        (
            ro.create_service,
            {"cluster": "prod", "serviceName": "s", "taskDefinition": "web", "desiredCount": 1},
        ),
    ]:
        expect_error("AccessDeniedException", 403, call, **kwargs)

    r = aws_at(
        endpoint,
        "ecs",
        "run-task",
        "--cluster",
        "prod",
        "--task-definition",
        "web",
        credentials_file=reader.file,
    )
    expect_cli_error(r, "AccessDeniedException", "RunTask")
    r = aws_at(endpoint, "ecs", "list-tasks", "--cluster", "prod", credentials_file=reader.file)
    assert r.returncode == 0, r.stderr

    # Nothing the reader tried happened.
    assert ecs.list_tasks(cluster="prod")["taskArns"] == []
    assert ecs.list_clusters()["clusterArns"] == [f"{ARN}:cluster/prod"]
    # Nor may it make credentials (only admin may).
    denied = berth_server.api(reader).request(
        "POST", "/v1/credentials", {"name": "x", "role": "admin"}
    )
    assert (denied.status, denied.error_type) == (403, "AccessDeniedException"), denied


def test_an_operator_works_in_its_cluster_only(
    berth_server, ecs, new_credential, ecs_at, aws_at, berth_cli
):
    endpoint = berth_server.endpoint
    for name in ("team-a", "team-b"):
        ecs.create_cluster(clusterName=name)
    operator = new_credential(berth_server, "alice", "operator:team-a")
    op = ecs_at(endpoint, credentials=operator)

    # In team-a: task definitions, tasks, services.
    td = op.register_task_definition(family="app", containerDefinitions=[container()])
    assert td["taskDefinition"]["taskDefinitionArn"] == f"{ARN}:task-definition/app:1"
    # Allowed: what stops it is that team-a has no container instance, as in ECS.
    message = expect_error(
        "InvalidParameterException", 400, op.run_task, cluster="team-a", taskDefinition="app"
    )
    assert "No Container Instances" in message, message
    service = op.create_service(
        cluster="team-a", serviceName="api", taskDefinition="app", desiredCount=0
    )["service"]
    assert service["serviceArn"] == f"{ARN}:service/team-a/api"
    assert op.list_services(cluster="team-a")["serviceArns"] == [service["serviceArn"]]
    assert op.describe_clusters(clusters=["team-a"])["clusters"][0]["clusterName"] == "team-a"
    r = aws_at(
        endpoint, "ecs", "list-services", "--cluster", "team-a", credentials_file=operator.file
    )
    assert r.returncode == 0, r.stderr
    assert r.json()["serviceArns"] == [service["serviceArn"]]

    # In team-b: refused, naming the cluster.
    message = expect_error(
        "AccessDeniedException", 403, op.run_task, cluster="team-b", taskDefinition="app"
    )
    assert "ecs:RunTask" in message and "user/alice" in message, message
    for call, kwargs in [
        (op.list_tasks, {"cluster": "team-b"}),
        (op.list_services, {"cluster": "team-b"}),
        (
            op.create_service,
            {"cluster": "team-b", "serviceName": "api", "taskDefinition": "app", "desiredCount": 0},
        ),
        (op.delete_cluster, {"cluster": "team-b"}),
    ]:
        expect_error("AccessDeniedException", 403, call, **kwargs)
    r = aws_at(
        endpoint,
        "ecs",
        "run-task",
        "--cluster",
        "team-b",
        "--task-definition",
        "app",
        credentials_file=operator.file,
    )
    expect_cli_error(r, "AccessDeniedException", "RunTask")
    assert ecs.list_services(cluster="team-b")["serviceArns"] == []
    assert ecs.list_tasks(cluster="team-b", desiredStatus="STOPPED")["taskArns"] == []

    # An operator manages no credentials.
    r = berth_cli(
        "credential",
        "create",
        "--name",
        "mallory",
        "--role",
        "admin",
        "--endpoint",
        endpoint,
        "--credentials-file",
        str(operator.file),
    )
    assert r.returncode != 0 and "AccessDeniedException" in r.stderr, (r.stdout, r.stderr)


PRIVILEGED = [
    ("berth:RunPrivilegedContainer", {"containerDefinitions": [container(privileged=True)]}),
    (
        "berth:RunHostProcess",
        {"containerDefinitions": [container(dockerLabels={"berth.runtime": "process"})]},
    ),
    ("berth:UseHostNamespaces", {"networkMode": "host", "containerDefinitions": [container()]}),
    ("berth:UseHostNamespaces", {"pidMode": "host", "containerDefinitions": [container()]}),
    (
        "berth:MountHostPath",
        {
            "volumes": [{"name": "root", "host": {"sourcePath": "/"}}],
            "containerDefinitions": [
                container(mountPoints=[{"sourceVolume": "root", "containerPath": "/host"}])
            ],
        },
    ),
    (
        "berth:AddLinuxCapabilities",
        {
            "containerDefinitions": [
                container(linuxParameters={"capabilities": {"add": ["SYS_ADMIN"]}})
            ]
        },
    ),
    (
        "berth:MapHostDevices",
        {
            "containerDefinitions": [
                container(linuxParameters={"devices": [{"hostPath": "/dev/mem"}]})
            ]
        },
    ),
]


def test_host_privileges_need_admin(berth_server, ecs, new_credential, ecs_at, aws_at, tmp_path):
    endpoint = berth_server.endpoint
    ecs.create_cluster(clusterName="apps")
    operator = new_credential(berth_server, "bob", "operator:apps")
    op = ecs_at(endpoint, credentials=operator)

    # An ordinary task definition is the operator's to register.
    op.register_task_definition(family="plain", containerDefinitions=[container()])

    for i, (permission, spec) in enumerate(PRIVILEGED):
        family = f"host-{i}"
        message = expect_error(
            "AccessDeniedException", 403, op.register_task_definition, family=family, **spec
        )
        assert permission in message, (permission, message)
        # The admin can.
        td = ecs.register_task_definition(family=family, **spec)["taskDefinition"]
        assert td["taskDefinitionArn"] == f"{ARN}:task-definition/{family}:1"
        assert td["status"] == "ACTIVE"
        # And what the admin registered, the operator may still not run.
        message = expect_error(
            "AccessDeniedException", 403, op.run_task, cluster="apps", taskDefinition=family
        )
        assert permission in message, (permission, message)
    # Refused registrations left nothing behind: every revision is the admin's first.
    families = ecs.list_task_definition_families()["families"]
    assert sorted(families) == sorted(["plain", *(f"host-{i}" for i in range(len(PRIVILEGED)))])

    # The same refusal through aws-cli, as the operator would meet it.
    spec = tmp_path / "privileged.json"
    spec.write_text(json.dumps({"family": "cli-priv", **PRIVILEGED[0][1]}))
    register = ("ecs", "register-task-definition", "--cli-input-json", f"file://{spec}")
    r = aws_at(endpoint, *register, credentials_file=operator.file)
    expect_cli_error(r, "AccessDeniedException", "RegisterTaskDefinition")
    assert "berth:RunPrivilegedContainer" in r.stderr, r.stderr
    r = aws_at(endpoint, *register)
    assert r.returncode == 0, r.stderr
    assert r.json()["taskDefinition"]["containerDefinitions"][0]["privileged"] is True


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def test_aws_cli_over_tls_trusts_the_cluster_ca(start_server, cli_env_for, ecs_at, new_credential):
    server = start_server(tls=True)
    endpoint = server.endpoint
    assert endpoint.startswith("https://127.0.0.1:"), endpoint
    ca = server.data_dir / "ca.pem"
    assert server.ca_bundle == ca.resolve()

    # Exactly the commands a user types, with the admin credentials file berth wrote.
    env = cli_env_for(server.admin_credentials_file)
    base = ["ecs", "list-clusters", "--endpoint-url", endpoint, "--output", "json"]

    def aws(*args: str):
        return subprocess.run(
            [sys.executable, str(aws_cli_path()), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    ok = aws(*base, "--ca-bundle", str(ca))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["clusterArns"] == []
    create = ["ecs", "create-cluster", "--cluster-name", "secure", "--endpoint-url", endpoint]
    created = aws(*create, "--ca-bundle", str(ca))
    assert created.returncode == 0, created.stderr

    # Without the CA, certificate verification fails: the cluster CA is no public one.
    untrusted = aws(*base)
    assert untrusted.returncode != 0, untrusted.stdout
    assert "SSL validation failed" in untrusted.stderr, untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    # Plain HTTP to the TLS port gets no ECS answer either.
    plain = aws(*[a if a != endpoint else endpoint.replace("https://", "http://") for a in base])
    assert plain.returncode != 0, plain.stdout

    # boto3 the same way: verify=<ca.pem> works, the default trust store refuses.
    assert ecs_at(endpoint).list_clusters()["clusterArns"] == [f"{ARN}:cluster/secure"]
    with pytest.raises(SSLError):
        make_ecs_client(endpoint, server.admin).list_clusters()
    # berth's own CLI with --ca-bundle, and the new key over TLS.
    reader = new_credential(server, "tls-reader", "read-only")
    assert ecs_at(endpoint, credentials=reader).list_clusters()["clusterArns"] == [
        f"{ARN}:cluster/secure"
    ]
    # The native API over TLS, signed by botocore; and urllib refuses an unknown CA.
    assert server.api().get_json("/v1/credentials")["credentials"]
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(
            f"{endpoint}/v1/health", timeout=10, context=ssl.create_default_context()
        )
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError), info.value


def test_plain_http_on_a_public_address_needs_insecure(berth_cli, tmp_path):
    try:
        data_dir = str(tmp_path / "exposed")
        r = berth_cli("server", "--listen", "0.0.0.0:0", "--data-dir", data_dir, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(
            "berth server served plain HTTP on 0.0.0.0 without --insecure", pytrace=False
        )
    assert r.returncode != 0, r.stdout
    assert "--tls" in r.stderr and "--insecure" in r.stderr, r.stderr
    assert "berth server listening" not in r.stdout
