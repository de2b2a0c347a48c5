"""Checks a /metrics answer (stdin) with Prometheus's own OpenMetrics parser, and that the
series of README "Metrics" are there: python metrics.py < answer"""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

EXPECTED = [
    "framedb_http_requests",
    "framedb_http_request_duration_seconds",
    "framedb_instance_operations",
    "framedb_instance_operation_duration_seconds",
    "framedb_cluster_calls",
    "framedb_cluster_call_duration_seconds",
    "framedb_registry_operation_duration_seconds",
    "framedb_reconcile_runs",
    "framedb_reconcile_run_duration_seconds",
    "framedb_reconcile_repairs",
    "framedb_instances",
    "framedb_free_node_ports",
]

families = {family.name: family for family in text_string_to_metric_families(sys.stdin.read())}
missing = [name for name in EXPECTED if not families.get(name) or not families[name].samples]
if missing:
    sys.exit(f"/metrics lacks samples of: {', '.join(missing)}")
samples = sum(len(family.samples) for family in families.values())
print(f"/metrics parses as OpenMetrics: {len(families)} families, {samples} samples")
