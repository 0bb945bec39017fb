"""Units of the server and the scheduler: keys, limits, request mapping, batching, cancellation."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings
from inkwell.serve.auth import KeyRing, read_keys_file
from inkwell.serve.errors import APIError
from inkwell.serve.limits import ConcurrencyLimiter, RateLimiter, parse_rate
from inkwell.serve.schemas import ChatCompletionRequest, CompletionRequest

CHAT = [{"role": "user", "content": "Write a poem"}]


# ---------------------------------------------------------------- keys


def test_keys_are_hashed_and_checked(tmp_path):
    ring = KeyRing.build(["sk-one"])
    assert all(k.digest == hashlib.sha256(b"sk-one").digest() for k in ring.keys)
    assert "sk-one" not in repr(ring.keys)
    assert ring.check("Bearer sk-one").startswith("key-")
    for header in (None, "", "Bearer", "Basic sk-one", "Bearer sk-two"):
        with pytest.raises(APIError) as info:
            ring.check(header)
        assert info.value.status == 401 and info.value.headers["WWW-Authenticate"] == "Bearer"
    assert KeyRing.build().check(None) is None  # no keys: an open server


def test_keys_file(tmp_path):
    digest = hashlib.sha256(b"sk-hashed").hexdigest()
    path = tmp_path / "keys.txt"
    path.write_text(f"# team keys\nalice sk-alice\nbob sha256:{digest}\n\nsk-bare\n")
    ring = KeyRing.build(keys_file=path)
    assert ring.check("Bearer sk-alice") == "alice"
    assert ring.check("Bearer sk-hashed") == "bob"
    assert ring.check("bearer  sk-bare ").startswith("key-")
    path.write_text("carol sha256:1234\n")
    with pytest.raises(InkwellError, match="64 hex"):
        read_keys_file(path)
    path.write_text("a k1\na k2\n")
    with pytest.raises(InkwellError, match="share one id"):
        KeyRing.build(keys_file=path)


# ---------------------------------------------------------------- limits


def test_parse_rate():
    assert parse_rate("60/min") == 60 and parse_rate("2/s") == 120 and parse_rate("3600/h") == 60
    assert parse_rate("30") == 30 and parse_rate(None) is None
    with pytest.raises(InkwellError):
        parse_rate("fast")


def test_token_bucket_per_key():
    limiter = RateLimiter(2)
    limiter.check("a")
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(APIError) as info:
        limiter.check("a")
    assert info.value.status == 429 and 1 <= int(info.value.headers["Retry-After"]) <= 30


def test_concurrency_limiter():
    limiter = ConcurrencyLimiter(1)
    slot = limiter.acquire()
    with pytest.raises(APIError) as info:
        limiter.acquire()
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "1"
    slot.release()
    slot.release()  # idempotent
    assert limiter.in_flight == 0
    limiter.acquire()


# ---------------------------------------------------------------- request mapping


def test_request_fields_map_onto_settings():
    req = ChatCompletionRequest(
        model="m", messages=CHAT, max_tokens=7, stop="###", seed=3, n=2, top_k=5, presence_penalty=0
    )
    settings = req.to_settings(max_tokens_limit=100, default_max_tokens=50)
    assert (settings.max_new_tokens, settings.stop, settings.seed, settings.num_return_sequences, settings.top_k) == (
        7,
        ["###"],
        3,
        2,
        5,
    )
    assert (
        ChatCompletionRequest(messages=CHAT).to_settings(max_tokens_limit=100, default_max_tokens=50).max_new_tokens
        == 50
    )
    assert (
        ChatCompletionRequest(messages=CHAT, max_completion_tokens=9)
        .to_settings(max_tokens_limit=100, default_max_tokens=50)
        .max_new_tokens
        == 9
    )
    assert ChatCompletionRequest(
        messages=[{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}]
    ).chat() == [{"role": "system", "content": "be brief"}]


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"n": 17}, "n"),
        ({"frequency_penalty": 1.0}, "frequency_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"min_tokens": 99}, "min_tokens"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
    ],
)
def test_bad_fields_are_400_naming_them(fields, param):
    with pytest.raises(APIError) as info:
        ChatCompletionRequest(messages=CHAT, max_tokens=5, **fields).to_settings(
            max_tokens_limit=100, default_max_tokens=5
        )
    assert info.value.status == 400 and info.value.param == param


def test_completion_prompts():
    assert CompletionRequest(prompt="hi").prompts() == ["hi"]
    for bad in ([1, 2, 3], ""):
        with pytest.raises(APIError):
            CompletionRequest(prompt=bad).prompts()
    with pytest.raises(APIError, match="echo"):
        CompletionRequest(prompt="hi", echo=True).prompts()


# ---------------------------------------------------------------- the scheduler


@pytest.fixture(params=["continuous", "window"])
def scheduler(tiny_engine, request):
    from inkwell.generate.scheduler import Scheduler

    sched = Scheduler(tiny_engine, window_s=0.2, continuous=request.param == "continuous").start()
    assert sched.continuous == (request.param == "continuous")
    yield sched
    sched.close()


def test_a_late_request_joins_the_running_batch_and_leaves_first(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, Scheduler

    sched = Scheduler(tiny_engine, window_s=0.01).start()
    try:
        started = threading.Event()
        long = sched.submit(
            GenerationJob(
                [CHAT],
                GenerationSettings(max_new_tokens=300, min_new_tokens=300, seed=1),
                on_delta=lambda i, t: started.set(),
            )
        )
        assert started.wait(30)
        short_settings = GenerationSettings(max_new_tokens=20, min_new_tokens=20, seed=1, stop=["zzz"])
        short = sched.submit(GenerationJob(["A longer prompt: poems, stories and headlines"], short_settings))
        while not short.done:
            time.sleep(0.001)
        assert not long.done  # answered while the earlier, longer request is still decoding
        short_text = short.results[0].text
        long_text = long.wait(30)[0].text
        assert sched.batches == 1  # it joined the running batch (other lengths and stops are per request)
        alone = tiny_engine.generate(["A longer prompt: poems, stories and headlines"], short_settings)[0].text
        assert short_text == alone  # joining mid-way (left-padded cache) does not change the text
        assert (
            long_text
            == tiny_engine.generate([CHAT], GenerationSettings(max_new_tokens=300, min_new_tokens=300, seed=1))[0].text
        )
    finally:
        sched.close()


def test_compatible_jobs_share_one_engine_call(scheduler):
    from inkwell.generate.scheduler import GenerationJob

    settings = GenerationSettings(max_new_tokens=6, seed=1)
    jobs = [scheduler.submit(GenerationJob([CHAT], settings)) for _ in range(3)]
    other = scheduler.submit(GenerationJob([CHAT], GenerationSettings(max_new_tokens=4, temperature=0)))  # greedy
    assert [len(job.wait(30)) for job in jobs] == [1, 1, 1]
    assert len(other.wait(30)) == 1 and other.results[0].completion_tokens <= 4
    assert scheduler.batches == 2  # three compatible jobs in one batch, the other sampling in another
    assert {job.results[0].prompt_index for job in jobs} == {0}


def test_each_job_keeps_its_own_seed_in_a_shared_batch(scheduler, tiny_engine):
    from inkwell.generate.scheduler import GenerationJob

    settings = GenerationSettings(max_new_tokens=8, temperature=0.9)
    seeded = [GenerationJob([CHAT], GenerationSettings(max_new_tokens=8, temperature=0.9, seed=s)) for s in (11, 12)]
    seedless = [GenerationJob([CHAT], settings) for _ in range(2)]
    for job in seeded + seedless:
        scheduler.submit(job)
    texts = [job.wait(30)[0].text for job in seeded + seedless]
    assert scheduler.batches == 1
    assert len(set(texts)) == 4  # seedless requests get their own seeds, too
    for job, seed in zip(seeded, (11, 12)):  # and the same seed alone gives the same text
        assert job.results[0].seed == seed
        assert (
            scheduler.run([CHAT], GenerationSettings(max_new_tokens=8, temperature=0.9, seed=seed))[0].text
            == job.results[0].text
        )


def test_cancelled_jobs_leave_the_batch(scheduler):
    from inkwell.generate.scheduler import GenerationJob, JobCancelled

    started = threading.Event()
    settings = GenerationSettings(max_new_tokens=400, min_new_tokens=400)
    job = scheduler.submit(GenerationJob([CHAT], settings, on_delta=lambda i, t: started.set()))
    assert started.wait(30)
    job.cancel()
    result = job.wait(30)[0]
    assert result.finish_reason == "cancelled" and result.completion_tokens < 400
    early = GenerationJob([CHAT], settings)
    early.cancel()
    scheduler.submit(early)
    with pytest.raises(JobCancelled):
        early.wait(30)


def test_one_bad_request_does_not_fail_its_batch(scheduler):
    from inkwell.generate.scheduler import GenerationJob

    settings = GenerationSettings(max_new_tokens=20)
    good = scheduler.submit(GenerationJob([CHAT], settings))
    bad = scheduler.submit(GenerationJob(["word " * 600], settings))  # beyond the 512-token context
    assert good.wait(30)[0].completion_tokens > 0
    with pytest.raises(InkwellError, match="context"):
        bad.wait(30)


def test_scheduled_engine_runs_template_code(scheduler, tiny_engine):
    from inkwell.generate.content import write
    from inkwell.generate.scheduler import ScheduledEngine
    from inkwell.prompts.library import get_template

    engine = ScheduledEngine(scheduler)
    assert engine.count_tokens(CHAT) == tiny_engine.count_tokens(CHAT)
    results = write(
        engine, get_template("headline"), {"text": "Bamboo bottles"}, overrides={"max_new_tokens": 5, "seed": 1}
    )
    direct = write(
        tiny_engine, get_template("headline"), {"text": "Bamboo bottles"}, overrides={"max_new_tokens": 5, "seed": 1}
    )
    assert results[0].text == direct[0].text


def test_close_fails_pending_jobs(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, Scheduler

    sched = Scheduler(tiny_engine)  # never started: jobs stay pending
    job = sched.submit(GenerationJob([CHAT], GenerationSettings(max_new_tokens=2)))
    sched.close(timeout=1)
    with pytest.raises(InkwellError, match="shut down"):
        job.wait(1)
    with pytest.raises(InkwellError):
        sched.submit(GenerationJob([CHAT], GenerationSettings(max_new_tokens=2)))


def test_a_batch_that_never_empties_keeps_a_short_cache(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, Scheduler

    sched = Scheduler(tiny_engine, window_s=0.01).start()
    lengths: list[tuple[int, int]] = []  # (cache length, the long row's real length), seen on the scheduler thread

    def watch(_index, _text):
        batch = sched._batch
        row = next(r for r in batch.rows if r.owner is long)
        lengths.append((batch.cache.get_seq_length(), len(row.prompt_ids) + len(row.generated)))

    try:
        settings = GenerationSettings(max_new_tokens=150, min_new_tokens=150, seed=1)
        long = GenerationJob(["Poems"], settings, on_delta=watch)
        sched.submit(long)
        while len(lengths) < 5:
            time.sleep(0.001)
        prompt = "The quick brown fox jumps over the lazy dog. " * 12
        visitor = sched.submit(GenerationJob([prompt], GenerationSettings(max_new_tokens=3, seed=1)))
        visitor.wait(30)
        long.wait(30)
        assert max(cache for cache, _ in lengths) >= tiny_engine.count_tokens(prompt)  # the visitor padded the cache...
        assert lengths[-1][0] == lengths[-1][1] - 1  # ...and once it left, the cache shrank back to the live row
        assert long.results[0].text == tiny_engine.generate(["Poems"], settings)[0].text  # and the text is unchanged
    finally:
        sched.close()


def test_serve_engine_choice_is_checked_before_loading(tiny_chat_model):
    from inkwell.errors import InkwellError
    from inkwell.serve.state import ServeConfig, load_engine

    with pytest.raises(InkwellError, match="unknown engine"):
        load_engine(ServeConfig(model=str(tiny_chat_model), engine="onnx"))
    with pytest.raises(InkwellError, match="base model only"):
        load_engine(ServeConfig(model=str(tiny_chat_model), engine="native", adapters={"a": "x"}))
    # auto on an HF folder (no GGUF behind it): the torch engine, as the default
    engine, adapters = load_engine(ServeConfig(model=str(tiny_chat_model), engine="auto"))
    assert type(engine).__name__ == "Engine" and adapters == {}
