"""Prometheus metrics of one app: requests, latency, scores and model versions.

Each app gets its own registry, so several apps (tests, benchmarks) never share counts.
Routes are labelled by their template (``/v1/leads/score``), never the raw path, so a
scan of random URLs cannot blow up the number of series.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)
SCORE_BUCKETS = tuple(float(b) for b in range(10, 101, 10))


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    scores: Histogram
    scored_rows: Counter
    model_version: Gauge
    model_load_failures: Counter
    registry_failures: Counter
    feature_psi: Gauge
    score_psi: Gauge
    window_rows: Gauge

    def render(self) -> bytes:
        return generate_latest(self.registry)


def create_metrics() -> Metrics:
    """A fresh registry with the service's metrics."""
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter(
            "leadscore_http_requests",
            "HTTP requests by route, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "leadscore_http_request_duration_seconds",
            "Time from request to response by route, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        scores=Histogram(
            "leadscore_score",
            "Distribution of the 0-100 scores served, by task.",
            ["task"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        ),
        scored_rows=Counter(
            "leadscore_scored_rows",
            "Leads or deals scored, by task.",
            ["task"],
            registry=registry,
        ),
        model_version=Gauge(
            "leadscore_model_info",
            "1 for the model version being served for each task.",
            ["task", "name", "version"],
            registry=registry,
        ),
        model_load_failures=Counter(
            "leadscore_model_load_failures",
            "Model versions that failed to load or check, by task.",
            ["task"],
            registry=registry,
        ),
        registry_failures=Counter(
            "leadscore_registry_poll_failures",
            "Registry polls that could not reach the model registry, by task.",
            ["task"],
            registry=registry,
        ),
        feature_psi=Gauge(
            "leadscore_feature_psi",
            "PSI of each feature over the rows scored lately against the model's reference "
            "profile (0.1: warn, 0.25: alert), by task; absent below the minimum window.",
            ["task", "feature"],
            registry=registry,
        ),
        score_psi=Gauge(
            "leadscore_score_psi",
            "PSI of the 0-100 score over the rows scored lately against the model's test "
            "period, by task; absent below the minimum window.",
            ["task"],
            registry=registry,
        ),
        window_rows=Gauge(
            "leadscore_monitoring_window_rows",
            "Rows in each task's monitoring window (the newest scored by its model version).",
            ["task"],
            registry=registry,
        ),
    )
