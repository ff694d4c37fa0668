"""The metrics stack of docker-compose.yml, checked without Docker: Prometheus scrapes the
services and ports the compose file really runs, Grafana is provisioned with that Prometheus
and the dashboard, and every series a dashboard panel reads is one the API or the worker
really serves: scraped from both endpoints after orders and exceptions went through the real
worker (tests/worker_metrics.py), not from a list kept by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.settings import Settings
from tests.compose_files import ROOT, _bind_mounts, _env, _ports, _service
from tests.orders_api import Headers
from tests.worker_metrics import MetricsWorker, Scrape, drive_scenario, observed, settings

__all__ = ["observed", "settings"]  # the fixtures, used by name

PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
JOBS = {"omniflow-api": "api", "omniflow-worker": "worker"}  # scrape job -> compose service
# Grafana's own variables, as a panel's query would have them replaced.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def _jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in _yaml(PROMETHEUS_YML)["scrape_configs"]}


def _mounted(service: str, container_path: str) -> Path:
    """The host file or folder of deploy/ that `service` sees at `container_path`."""
    for target, source in _bind_mounts(_service(service)).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{service} mounts nothing at {container_path}")


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out += [panel, *_panels(panel)] if "panels" in panel else [panel]
    return out


def _selectors() -> list[tuple[str, str, dict[str, str]]]:
    """(panel title, metric name, label matchers) of every series every panel reads."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for path in DASHBOARDS:
        for panel in _panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                expr = str(target["expr"])
                for var, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(var, value)
                assert "$" not in expr, f"{panel['title']}: an unknown variable in {expr!r}"

                def visit(node: object, title: str = str(panel["title"])) -> bool:
                    if isinstance(node, promql_parser.VectorSelector):
                        matchers = {m.name: m.value for m in node.matchers.matchers}
                        found.append((title, str(node.name), matchers))
                    return True

                promql_parser.walk(promql_parser.parse(expr), visit)  # raises on bad PromQL
    return found


# -- Prometheus -----------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_and_every_worker_on_their_ports() -> None:
    jobs = _jobs()
    assert set(jobs) == set(JOBS), f"scrape jobs {sorted(jobs)}, expected {sorted(JOBS)}"
    defaults = Settings.model_fields
    ports = {
        "api": int(_env(_service("api")).get("OMNIFLOW_API_PORT", defaults["api_port"].default)),
        "worker": int(
            _env(_service("worker")).get(
                "OMNIFLOW_WORKER_METRICS_PORT", defaults["worker_metrics_port"].default
            )
        ),
    }
    for name, service in JOBS.items():
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics", f"{name} scrapes {job['metrics_path']}"
        [sd] = job["dns_sd_configs"]  # every replica: Docker's DNS answers one address each
        assert sd["names"] == [service], f"{name} resolves {sd['names']}, not the {service} service"
        assert sd["port"] == ports[service], (
            f"{name} scrapes port {sd['port']}, {service} serves {ports[service]}"
        )
    assert _env(_service("worker")).get("OMNIFLOW_WORKER_METRICS_HOST") == "0.0.0.0", (
        "the worker's endpoint binds to loopback by default: Prometheus could not reach it"
    )
    assert "9464" in [str(p) for p in _service("worker").get("expose", [])]


def test_prometheus_runs_that_config() -> None:
    prometheus = _service("prometheus")
    flags = dict(str(arg).split("=", 1) for arg in prometheus["command"])
    assert _mounted("prometheus", flags["--config.file"]) == PROMETHEUS_YML
    assert [port for _, port in _ports(prometheus)] == [9090]
    assert all(host.startswith("127.0.0.1:") for host in map(str, prometheus["ports"])), (
        "Prometheus has no login"
    )


# -- Grafana --------------------------------------------------------------------------------


def test_grafana_is_provisioned_with_that_prometheus_and_the_dashboards() -> None:
    provisioning = _mounted("grafana", "/etc/grafana/provisioning")
    [source] = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    [provider] = _yaml(provisioning / "dashboards" / "omniflow.yml")["providers"]
    assert _mounted("grafana", provider["options"]["path"]) == GRAFANA / "dashboards"
    assert DASHBOARDS, "deploy/grafana/dashboards has no dashboard"
    home = _env(_service("grafana"))["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _mounted("grafana", home) in DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"], path
        panels = [p for p in _panels(dashboard) if p["type"] != "row"]
        assert panels, f"{path.name} has no panels"
        ids = [p["id"] for p in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name} repeats a panel id"
        for panel in panels:
            assert panel["targets"], f"{panel['title']} queries nothing"
            for where in (panel, *panel["targets"]):
                assert where["datasource"]["uid"] == source["uid"], f"{panel['title']}: another datasource"


def test_every_panel_query_is_promql_on_a_scrape_job() -> None:
    selectors = _selectors()
    assert selectors
    for title, name, matchers in selectors:
        assert matchers.get("job") in JOBS, f"{title}: {name} is not scoped to a scrape job ({matchers})"


def test_the_dashboard_covers_the_api_the_worker_and_the_exception_queues() -> None:
    rows = [p["title"] for d in DASHBOARDS for p in json.loads(d.read_text())["panels"] if p["type"] == "row"]
    assert rows == ["API", "Worker", "Exception queues"]
    names = {name for _, name, _ in _selectors()}
    for needed in (
        "omniflow_http_requests_total",
        "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
        "temporal_worker_task_slots_used",
        "temporal_activity_execution_failed_total",
        "omniflow_steps_total",
        "omniflow_exceptions_open",
        "omniflow_exceptions_escalated_total",
    ):
        assert needed in names, f"no panel reads {needed}"


# -- every series a panel reads is served ----------------------------------------------------


async def test_every_series_a_panel_reads_is_served_by_its_job(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, observed: MetricsWorker
) -> None:
    await drive_scenario(api, keys, engine, observed)
    r = await api.get("/metrics")
    assert r.status_code == 200
    served = {"omniflow-api": Scrape(r.text), "omniflow-worker": await observed.scrape()}
    # A gauge with no series now (nothing open after the scenario) is still declared.
    names = {job: {n for n, _, _ in s.samples()} | set(s.families()) for job, s in served.items()}
    missing = sorted(
        f"{title}: {name} ({job})"
        for title, name, matchers in _selectors()
        if name not in names[job := matchers["job"]]
    )
    assert not missing, f"panels read series their job does not serve: {missing}"
