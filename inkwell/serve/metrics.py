"""Prometheus metrics for one app (its own CollectorRegistry, so two servers in one process never clash)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets sized for small models on CPUs and GPUs: milliseconds per token up to minutes per request.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


class ServeMetrics:
    def __init__(self, running: Callable[[], float], waiting: Callable[[], float], in_flight: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge(
            "inkwell_requests_running", "Requests whose rows are in the running engine batch.", registry=r
        ).set_function(running)
        Gauge("inkwell_requests_waiting", "Requests queued for the next engine batch.", registry=r).set_function(
            waiting
        )
        Gauge(
            "inkwell_requests_in_flight",
            "Admitted requests not yet answered (the --max-concurrency count).",
            registry=r,
        ).set_function(in_flight)
        self.ttft = Histogram(
            "inkwell_time_to_first_token_seconds",
            "Request received to first token out.",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "inkwell_inter_token_latency_seconds",
            "Time between successive streamed tokens.",
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "inkwell_e2e_request_latency_seconds", "Request received to last token.", buckets=E2E_BUCKETS, registry=r
        )
        self.prompt_tokens = Counter("inkwell_prompt_tokens", "Prompt tokens processed.", registry=r)
        self.completion_tokens = Counter("inkwell_generation_tokens", "Completion tokens generated.", registry=r)
        self.requests = Counter(
            "inkwell_requests", "Finished requests by endpoint and status code.", ["endpoint", "status"], registry=r
        )
        self.errors = Counter("inkwell_request_errors", "Failed requests by error type.", ["type"], registry=r)
        self.cancelled = Counter(
            "inkwell_requests_cancelled", "Requests cancelled because the client went away.", registry=r
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
