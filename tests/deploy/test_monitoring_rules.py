"""k8s/monitoring/: the alert rules and their unit tests through promtool, the scrape config, the dashboard.

promtool comes from Debian's `prometheus` package (.ci/run installs it): the
promtool tests skip without it, and fail when BOLTLINK_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import MONITORING, config_map_data, dashboard, k8s_object, load_documents, need_tool

from boltlink.metrics import render

RULES = MONITORING / "alert-rules.yaml"
RULE_TESTS = MONITORING / "alert-rules.test.yaml"
SCRAPE = MONITORING / "prometheus-scrape.yaml"
# Grafana's variables, as a query would see them.
DASHBOARD_VARIABLES = {"$__rate_interval": "1m", "$namespace": "boltlink"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return need_tool("promtool", "apt-get install prometheus")


def run_promtool(promtool: str, *args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rules() -> list[dict[str, Any]]:
    (document,) = load_documents(RULES)
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    exprs = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


# -- promtool ------------------------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    checked = run_promtool(promtool, "check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    tested = run_promtool(promtool, "test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_test_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The control: the same unit tests against rules with the error threshold moved must fail."""
    changed = RULES.read_text().replace(") > 0.01", ") > 0.5")
    assert changed != RULES.read_text()
    (tmp_path / RULES.name).write_text(changed)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    tested = run_promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "BoltlinkHighErrorRate" in tested.stdout + tested.stderr


def test_scrape_config_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    """The whole Prometheus config, rule files included, with two stand-ins.

    Debian's promtool is built without Kubernetes service discovery, so the pod discovery gives
    way to a static target; and promtool opens the token file, so one is written.
    """
    config = yaml.safe_load(SCRAPE.read_text())
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs"), job["job_name"]
        job["static_configs"] = [{"targets": ["127.0.0.1:9101"]}]
        job["authorization"]["credentials_file"] = str(token)
    (tmp_path / SCRAPE.name).write_text(yaml.safe_dump(config))
    for rule_file in config["rule_files"]:
        (tmp_path / rule_file).write_text((MONITORING / rule_file).read_text())
    checked = run_promtool(promtool, "check", "config", SCRAPE.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel's query, as a recording rule: promtool parses every expression of a rules file."""
    exprs = dashboard_exprs()
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr} for index, expr in enumerate(exprs)]}]}
    (tmp_path / "dashboard-queries.yaml").write_text(yaml.safe_dump(recording))
    checked = run_promtool(promtool, "check", "rules", "dashboard-queries.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


# -- what the files refer to ------------------------------------------------------------------------------------


def exported_metrics() -> set[str]:
    """Every series name /metrics can show, from the renderer itself with every part present."""
    snapshot = {
        "build": {"version": "0", "build": "x"},
        "http": {"routes": {"/<slug>": {"3xx": 1}}, "latency": [1] * 14, "latency_sum": 1.0, "in_flight": 0},
        "clicks_queued": 1, "clicks_aggregated": 1,
        "aggregator": {"lag": 1.0, "events_per_second": 1.0, "backlog": 0},
        "processes": [{"name": "api-0", "role": "api", "pid": 1, "status": "online", "cpu": 1.0, "memory": 1,
                       "restarts": 0}],
    }
    return {line.split("{")[0].split(" ")[0] for line in render(snapshot).splitlines() if not line.startswith("#")}


def referenced_metrics(text: str) -> set[str]:
    return set(re.findall(r"\bboltlink_[a-z_]+\b", text))


def test_rules_and_dashboard_use_metrics_boltlink_exports() -> None:
    exported = exported_metrics()
    from_rules = referenced_metrics(RULES.read_text())
    from_dashboard = referenced_metrics(" ".join(dashboard_exprs()))
    assert from_rules and from_dashboard
    assert from_rules - exported == set()
    assert from_dashboard - exported == set()


def test_the_issues_figures_are_alerted_on() -> None:
    by_name = {rule["alert"]: rule["expr"] for rule in rules()}
    wanted = {
        "BoltlinkHighErrorRate": 'status_class="5xx"',
        "BoltlinkHighLatencyP99": "histogram_quantile(0.99",
        "BoltlinkAggregatorLagging": "boltlink_aggregator_lag_seconds",
        "BoltlinkProcessRestarting": "boltlink_process_restarts_total",
        "BoltlinkContainerRestarting": "kube_pod_container_status_restarts_total",
        "BoltlinkPodsNotReady": "kube_deployment_status_replicas_available",
    }
    for alert, needle in wanted.items():
        assert needle in by_name[alert], alert
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert tested == {rule["alert"] for rule in rules()}


def relabel_keeps(relabel: dict[str, Any], labels: dict[str, str]) -> bool:
    value = relabel.get("separator", ";").join(labels.get(name, "") for name in relabel["source_labels"])
    return re.fullmatch(relabel["regex"], value) is not None


def test_scrape_config_keeps_every_pods_metrics_port_only() -> None:
    (job,) = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    deployment_ports = {}
    for name in ("boltlink-api", "boltlink-aggregator", "boltlink-analytics"):
        template = k8s_object("Deployment", name)["spec"]["template"]
        (box,) = template["spec"]["containers"]
        ports = box.get("ports", []) or [{"name": ""}]
        for port in ports:
            labels = {f"__meta_kubernetes_pod_label_{key.replace('.', '_').replace('/', '_').replace('-', '_')}": value
                      for key, value in template["metadata"]["labels"].items()}
            labels["__meta_kubernetes_pod_container_port_name"] = port["name"]
            deployment_ports[(name, port["name"])] = (relabel_keeps(keep, labels), port.get("containerPort"))
    kept = {key: port for key, (kept, port) in deployment_ports.items() if kept}
    metrics_port = int(config_map_data()["BOLTLINK_METRICS_PORT"])
    assert kept == {(name, "metrics"): metrics_port
                    for name in ("boltlink-api", "boltlink-aggregator", "boltlink-analytics")}
    namespaces = job["kubernetes_sd_configs"][0]["namespaces"]["names"]
    assert namespaces == [k8s_object("Namespace", "boltlink")["metadata"]["name"]]


def test_dashboard_panels_are_well_formed() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            # Every boltlink series is filtered to the chosen namespace.
            if "boltlink_" in target["expr"] or "up{" in target["expr"]:
                assert 'namespace="$namespace"' in target["expr"], panel["title"]
