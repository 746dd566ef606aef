"""berth's `/metrics` read by the Prometheus project's own Python client (prometheus_client):
its OpenMetrics parser is strict (every family typed and described, counters ending in
`_total`, histogram buckets cumulative up to `+Inf`, the closing `# EOF`), and its text-format
parser reads what berth answers when the scraper does not ask for OpenMetrics.

The scrape is signed by botocore for the signing name `berth`, as every native API call is.
"""

from __future__ import annotations

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def header(answer, name: str) -> str:
    return next((v for k, v in answer.headers.items() if k.lower() == name), "")


def sample(families: dict, family: str, name: str, **labels: str) -> float:
    """The value of the sample `name` of `family` whose labels include `labels`."""
    matching = [
        s.value
        for s in families[family].samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) == 1, f"{name}{labels}: {families[family].samples}"
    return matching[0]


def test_metrics_parse_with_prometheus_own_parsers(berth_server, ecs):
    ecs.create_cluster(clusterName="scraped")
    api = berth_server.api()

    answer = api.request("GET", "/metrics", headers={"Accept": OPENMETRICS})
    assert answer.status == 200, answer.body
    assert header(answer, "content-type").startswith(OPENMETRICS)
    families = {f.name: f for f in openmetrics_families(answer.body.decode())}
    assert families["berth_api_requests"].type == "counter"
    assert families["berth_api_request_duration_seconds"].type == "histogram"
    assert families["berth_api_request_duration_seconds"].unit == "seconds"
    assert families["berth_raft_commit_duration_seconds"].type == "histogram"
    assert families["berth_tasks"].type == "gauge"
    for family in families.values():
        assert family.documentation, f"{family.name} has no HELP"
    created = sample(
        families,
        "berth_api_requests",
        "berth_api_requests_total",
        api="ecs",
        operation="CreateCluster",
        status="200",
    )
    assert created == 1.0
    assert sample(families, "berth_clusters", "berth_clusters") == 1.0

    answer = api.request("GET", "/metrics")
    assert answer.status == 200, answer.body
    assert header(answer, "content-type").startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_families(answer.body.decode())}
    assert families["berth_api_requests"].type == "counter"
    assert families["berth_raft_leader_changes"].type == "counter"
    assert families["berth_raft_is_leader"].samples[0].value == 1.0
