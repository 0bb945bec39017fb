"""Schema fuzzing: schemathesis generates requests for every operation of the server's own /openapi.json,
bodies that fit the schema and bodies that break it, and sends them to a live server on the tiny model
(with an API key). No answer may be a server error: no 5xx status, and no `server_error` event inside a
200 stream. Bounded by an example count per operation and a time budget; the count of cases sent is printed."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from serve.serve_helpers import API_KEY, start_server

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

BUDGET_S = 120.0  # the whole fuzz run, shared evenly: an operation's examples stop early when its share is spent
EXAMPLES = {"positive": 150, "negative": 100}  # per operation and mode: hypothesis' max_examples
# The same cases on every run unless RELIABILITY_SEED asks for others (a CI failure then reproduces).
SEED = os.environ.get("RELIABILITY_SEED")
KNOWN_TEMPLATES = ("headline", "lesson-quiz", "product-description")  # besides random names: real template runs
CASE_TIMEOUT_S = 30.0
# What fuzzing found before, sent on every run (each was a 500, now a 400 naming the field): a subnormal divisor
# overflowed the logits to inf, and the failed decode step failed every request in the batch
FOUND = [
    {"prompt": "0", "repetition_penalty": 5e-324},
    {"prompt": "0", "temperature": 5e-324},
    {"messages": [{"role": "user", "content": "0"}], "repetition_penalty": 5e-324, "stream": True},
    {"messages": [{"role": "user", "content": "0"}], "temperature": 1e-300},
    # a seed beyond 64 bits could not seed a generator (500), one beyond 63 bits not be stored in the history
    {"prompt": "#", "seed": 59056427935191678976, "stream": True},
    {"prompt": "#", "seed": 2**63, "n": 2},
]


@pytest.fixture(scope="module")
def fuzz_server(tiny_chat_model, tmp_path_factory):
    # Small token limits keep every generated case quick; what is fuzzed is the HTTP layer, not throughput.
    server = start_server(
        tiny_chat_model,
        tmp_path_factory.mktemp("fuzz"),
        api_keys=[API_KEY],
        max_tokens_limit=32,
        default_max_tokens=16,
        training=False,  # the studio's training endpoint is fuzzed for its answers, without starting runs
    )
    yield server
    server.stop()


def streamed_server_error(response) -> bool:
    """A stream that started (200) and then failed carries the error as an SSE event."""
    if "text/event-stream" not in response.headers.get("content-type", ""):
        return False
    return '"type": "server_error"' in response.content.decode("utf-8", "replace")


@pytest.fixture
def hypothesis_home(tmp_path):
    """Hypothesis keeps caches in `.hypothesis` of the working folder: here, a temporary one instead."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


def test_no_operation_answers_with_a_server_error(fuzz_server, hypothesis_home, figures):
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok
    from schemathesis.errors import FailureGroup
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    schema.config.output.sanitization.update(enabled=False)  # a failure's curl line shows max_tokens (a "token")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    labels = sorted(op.label for op in operations)
    # every route of serve/api/ and of the studio's API: a new one is fuzzed without a change here
    assert len([op for op in labels if "/studio/" not in op]) == 7 and len(labels) >= 25, labels

    session = requests.Session()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    share = BUDGET_S / (len(EXAMPLES) * len(operations))  # seconds per operation and mode
    deadline = time.monotonic() + share
    sent: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []

    def send(case) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(session=session, headers=auth, timeout=CASE_TIMEOUT_S)
        sent[case.operation.label] += 1
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
            if streamed_server_error(response):
                raise AssertionError("a server_error event inside a 200 stream")
        except (AssertionError, FailureGroup) as exc:  # a check's failure, or several of them
            failures.append(f"{case.operation.label} -> {response.status_code}: {exc!r}\n{case.as_curl_command()}")

    started = time.monotonic()
    by_path = {op.path: op for op in operations}
    for body in FOUND:
        send(by_path["/v1/chat/completions" if "messages" in body else "/v1/completions"].Case(body=body))
    for name, count in EXAMPLES.items():
        mode = GenerationMode(name)
        for operation in operations:
            deadline = time.monotonic() + share
            strategy = operation.as_strategy(generation_mode=mode)
            if "{template}" in operation.path and mode.is_positive:
                strategy = st.one_of(
                    strategy,
                    *(
                        operation.as_strategy(generation_mode=mode, path_parameters={"template": t})
                        for t in KNOWN_TEMPLATES
                    ),
                )
            run = settings(
                max_examples=count,
                deadline=None,
                database=None,  # no example database: the same cases every run (see SEED)
                phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
                suppress_health_check=list(HealthCheck),
                derandomize=SEED is None,
            )(given(case=strategy)(send))
            if SEED is not None:
                run = seed(int(SEED))(run)
            try:
                run()
            except Unsatisfiable:  # nothing to break in an operation without parameters or body (GET /health)
                assert not mode.is_positive, operation.label
    seconds = time.monotonic() - started

    total = sum(sent.values())
    figures["schema fuzz"] = (
        f"{total} cases over {len(labels)} operations in {seconds:.0f} s; statuses {dict(sorted(statuses.items()))}; "
        f"per operation {dict(sorted(sent.items()))}"
    )
    assert not failures, f"{len(failures)} of {total} cases got a server error:\n" + "\n\n".join(failures[:5])
    assert total >= 100, f"only {total} cases ran within {BUDGET_S:.0f} s"
    assert 200 in statuses and 400 in statuses  # both valid generations and refusals were exercised
