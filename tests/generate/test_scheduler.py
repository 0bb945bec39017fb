"""Scheduler: chunked prefill under a per-step token budget, staggered admission of a burst, and the bounded
queue with back-pressure. (Joining, seeds, cancellation and adapters: tests/serve/test_serve_units.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from test_engine import PROMPTS, greedy, hf_generate, sampling, sharp_engine  # noqa: F401 - sharp_engine is a fixture

from inkwell.generate.engine import Engine
from inkwell.generate.settings import GenerationSettings

LONG = "The quick brown fox jumps over the lazy dog. Poems, stories, headlines and news articles. " * 4


@pytest.fixture(scope="module")
def peaked_engine(tiny_chat_model):
    """The sharp engine's scaling plus larger query/key projections: attention is peaked instead of nearly
    uniform, so the output depends on where each token sits (a wrong position id changes the text)."""
    import torch

    from inkwell.models.load import load_model

    loaded = load_model(str(tiny_chat_model), dtype="fp32", device="cpu")
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(10)
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(12)
        loaded.model.model.norm.weight.mul_(20)
    return Engine(loaded, batch_size=4)


@pytest.mark.parametrize(("batch_size", "step_tokens"), [(2, 5), (4, 40), (3, 256)])
def test_chunked_prefill_in_padded_lanes_matches_hf_with_position_sensitive_attention(
    peaked_engine, batch_size, step_tokens
):
    # (2, 5): every prompt goes in chunks of a few tokens; (4, 40): lanes of several left-padded prompts;
    # (3, 256): whole prompts, rows joining the batch at other cache lengths as places free up
    engine = Engine(peaked_engine.loaded, batch_size=batch_size, step_tokens=step_tokens)
    prompts = [*PROMPTS, LONG]
    results = engine.generate(prompts, greedy(max_new_tokens=10, min_new_tokens=10))
    for prompt, result in zip(prompts, results):
        text, _ = hf_generate(peaked_engine, prompt, max_new_tokens=10, min_new_tokens=10, do_sample=False)
        assert result.text == text, prompt


def start(engine, **options):
    from inkwell.generate.scheduler import Scheduler

    options.setdefault("window_s", 0.01)
    return Scheduler(engine, **options).start()


def test_a_long_prompt_joins_mid_stream_in_chunks_without_stalling_it(peaked_engine):
    from inkwell.generate.scheduler import GenerationJob

    sched = start(peaked_engine, step_tokens=6)  # 1 running row: 5 prompt tokens a step
    passes: list[tuple[int, int]] = []  # (rows, columns) of every forward pass

    def record(_module, _args, kwargs):
        passes.append(tuple(kwargs["input_ids"].shape))

    hook = peaked_engine.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        first = threading.Event()
        running_settings = greedy(max_new_tokens=80, min_new_tokens=80)
        running = sched.submit(GenerationJob(["Poems"], running_settings, on_delta=lambda i, t: first.set()))
        assert first.wait(30)
        long_settings = greedy(max_new_tokens=12, min_new_tokens=12, stop=["zzz"])
        long = sched.submit(GenerationJob([LONG], long_settings))
        long_text = long.wait(60)[0].text
        running_text = running.wait(60)[0].text
    finally:
        hook.remove()
        sched.close()
    assert sched.batches == 1  # it joined the running batch
    prompt_tokens = peaked_engine.count_tokens(LONG)
    chunks = [i for i, (rows, cols) in enumerate(passes) if cols > 1][1:]  # [0] is the first prompt's prefill
    assert sum(passes[i][1] for i in chunks) == prompt_tokens and len(chunks) >= prompt_tokens // 5
    assert all(passes[i][1] <= 5 for i in chunks)
    # every chunk came with a decode pass of the running row: it kept emitting a token per step
    assert all(passes[i - 1] == (1, 1) for i in chunks)
    # and neither text changed: chunked prefill into a left-padded, shared cache is exact
    assert long_text == peaked_engine.generate([LONG], long_settings)[0].text
    assert running_text == peaked_engine.generate(["Poems"], running_settings)[0].text


def test_a_burst_is_admitted_a_budget_at_a_time(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob

    engine = Engine(tiny_engine.loaded, batch_size=8)
    prompts = [
        f"{word} writes content: ads, emails, reviews" for word in ("Inkwell", "Poems", "Quick", "Bamboo", "Tea", "Fox")
    ]
    widest = max(engine.count_tokens(p) for p in prompts)
    sched = start(engine, step_tokens=2 * widest + 4, window_s=0.5)  # the whole burst lands before the first step
    passes: list[tuple[int, int]] = []
    hook = engine.model.register_forward_pre_hook(
        lambda _m, _a, kw: passes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    settings = greedy(max_new_tokens=6, min_new_tokens=6)
    try:
        jobs = [sched.submit(GenerationJob([p], settings)) for p in prompts]
        results = [job.wait(60)[0] for job in jobs]
    finally:
        hook.remove()
        sched.close()
    prefills = [rows for rows, cols in passes if cols > 1]
    decodes = [rows for rows, cols in passes if cols == 1]
    assert prefills == [2, 2, 2]  # two newcomers a step (what the budget holds), not six at once
    assert decodes[:3] == [2, 4, 6]  # ... while those admitted earlier already decode
    latency = [r.latency_s for r in results]
    assert latency[0] < latency[-1]  # first come, first answered
    assert [r.text for r in results] == [r.text for r in engine.generate(prompts, settings)]


def test_seeded_sampling_is_reproducible_under_chunked_prefill(sharp_engine):  # noqa: F811 - the fixture
    from inkwell.generate.scheduler import GenerationJob

    sched = start(sharp_engine, step_tokens=4)
    try:
        settings = sampling(max_new_tokens=8, seed=21)
        jobs = [sched.submit(GenerationJob([p], settings)) for p in (LONG, "Poems", "Write a product")]
        texts = [job.wait(60)[0].text for job in jobs]
    finally:
        sched.close()
    assert texts == [sharp_engine.generate([p], settings)[0].text for p in (LONG, "Poems", "Write a product")]


# ---------------------------------------------------------------- the bounded queue


def test_a_full_queue_raises_with_a_retry_estimate_or_blocks(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, JobCancelled, QueueFull, Scheduler

    settings = GenerationSettings(max_new_tokens=2, temperature=0)
    sched = Scheduler(tiny_engine, max_waiting=3)  # not started: everything waits
    sched.submit(GenerationJob(["a", "b"], settings))
    sched.submit(GenerationJob(["c"], settings))
    with pytest.raises(QueueFull, match="3 rows waiting") as info:
        sched.submit(GenerationJob(["d"], settings))
    assert info.value.retry_after_s >= 1 and info.value.field == "max_queue"

    # block=True waits for room instead (until the scheduler starts and takes the waiting jobs) ...
    blocked = GenerationJob(["d"], settings)
    submitted = threading.Event()
    threading.Thread(target=lambda: (sched.submit(blocked, block=True), submitted.set()), daemon=True).start()
    time.sleep(0.3)
    assert not submitted.is_set()
    sched.start()
    assert submitted.wait(30)
    assert blocked.wait(30)[0].completion_tokens <= 2

    # ... and gives up when its job is cancelled while it waits
    stuck = Scheduler(tiny_engine, max_waiting=1)
    stuck.submit(GenerationJob(["a"], settings))
    leaving = GenerationJob(["b"], settings)
    threading.Timer(0.2, leaving.cancel).start()
    with pytest.raises(JobCancelled):
        stuck.submit(leaving, block=True)
    stuck.close(timeout=1)
    sched.close()


def test_a_job_larger_than_the_bound_runs_when_the_queue_is_empty(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob

    sched = start(tiny_engine, max_waiting=2)
    try:
        job = sched.submit(GenerationJob(["a", "b", "c"], GenerationSettings(max_new_tokens=2, temperature=0)))
        assert len(job.wait(30)) == 3
    finally:
        sched.close()


def test_scheduled_engine_blocks_or_raises_on_a_full_queue(tiny_engine):
    from inkwell.generate.scheduler import GenerationJob, QueueFull, ScheduledEngine, Scheduler

    sched = Scheduler(tiny_engine, max_waiting=1)  # not started
    sched.submit(GenerationJob(["a"], GenerationSettings(max_new_tokens=2)))
    with pytest.raises(QueueFull):
        ScheduledEngine(sched, block=False).generate(["b"], GenerationSettings(max_new_tokens=2))
    sched.close(timeout=1)


# ---------------------------------------------------------------- shared prompt starts (prefix cache)

SYSTEM = "You are Inkwell, a careful copywriter. You write vivid, accurate product descriptions and headlines."


def chat(text: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def test_prompts_sharing_a_start_prefill_it_once_and_write_the_same_text(peaked_engine):
    from inkwell.generate.scheduler import GenerationJob

    prompts = [chat(t) for t in ("Poems", "Write a product", "The quick brown fox", "Inkwell writes content")]
    ids = [peaked_engine.encode(p) for p in prompts]
    shared = next(i for i in range(len(ids[0])) if len({tuple(x[: i + 1]) for x in ids}) > 1)
    assert shared > 20
    sched = start(peaked_engine, window_s=0.3)
    passes: list[tuple[int, int]] = []
    hook = peaked_engine.model.register_forward_pre_hook(
        lambda _m, _a, kw: passes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    settings = greedy(max_new_tokens=8, min_new_tokens=8)
    try:
        burst = [sched.submit(GenerationJob([p], settings)) for p in prompts[:3]]  # one lane: the start computed once
        texts = [job.wait(60)[0].text for job in burst]
        later = sched.submit(GenerationJob([prompts[3]], settings))  # a later lane: the start is kept
        texts.append(later.wait(60)[0].text)
    finally:
        hook.remove()
        sched.close()
    assert sched._prefixes[None].hits >= 3 * shared
    prefilled = sum(rows * cols for rows, cols in passes if cols > 1)
    alone = sum(peaked_engine.count_tokens(p) for p in prompts)
    assert prefilled < alone - 2 * shared  # the shared start went through the model once, not four times
    for prompt, text in zip(prompts, texts):
        assert text == hf_generate(peaked_engine, prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)[0]


def test_samples_of_one_prompt_share_its_prefill_and_keep_their_seeds(peaked_engine, monkeypatch):
    import inkwell.generate.continuous as continuous

    settings = sampling(max_new_tokens=10, num_return_sequences=4, seed=3)
    shared = peaked_engine.generate([chat("Poems")], settings)
    monkeypatch.setattr(continuous, "MIN_PREFIX", 10_000)  # no sharing
    separate = peaked_engine.generate([chat("Poems")], settings)
    assert [r.text for r in shared] == [r.text for r in separate] and len({r.text for r in shared}) > 1


def test_prefix_cache_matches_any_start_of_a_kept_prompt():
    import torch

    from inkwell.generate.continuous import MIN_PREFIX, PrefixCache

    def kv(n):
        return [(torch.arange(n, dtype=torch.float).view(1, 1, n, 1), torch.zeros(1, 1, n, 1))]

    cache = PrefixCache(entries=2)
    a = list(range(40))
    cache.add(a, kv(40))
    assert cache.match([a]) == (39, tuple(a))  # one token is always left to prefill
    assert cache.match([a[:30] + [99] * 5, a[:25] + [7] * 9])[0] == 25  # shared by every prompt
    assert cache.match([a[: MIN_PREFIX - 1] + [99] * 9]) == (0, None)  # too short to bother
    assert cache.get(tuple(a), 25)[0][0].shape == (1, 1, 25, 1)
    cache.add(a + [40, 41], kv(42))  # covers the first entry, which goes
    assert list(cache.entries) == [tuple(a + [40, 41])]
    cache.add([5] * 20, kv(20))
    cache.add([6] * 20, kv(20))  # capacity 2: the least recently used goes
    assert len(cache.entries) == 2 and tuple(a + [40, 41]) not in cache.entries
