"""A seeded, scripted studio session on the tiny models: real templates rendered by a real engine, drafts
written by it, then a creator's edits, picks, verdicts and blind judgements, stored with StudioData."""

from __future__ import annotations

import pytest
from feedback_helpers import EMAIL, Session, new_piece


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def chat_engine(tiny_chat_model):
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec(str(tiny_chat_model), backend="torch", dtype="fp32", device="cpu"))


@pytest.fixture(scope="session")
def base_engine(tiny_base_model):
    from inkwell.generate.builder import EngineSpec, open_engine

    return open_engine(EngineSpec(str(tiny_base_model), backend="torch", dtype="fp32", device="cpu"))


@pytest.fixture
def studio():
    """The studio's tables in this test's INKWELL_HOME database (the one the CLI opens)."""
    from inkwell.store import Store
    from inkwell.store.studio import StudioData

    store = Store()
    yield StudioData(store)
    store.close()


@pytest.fixture
def session(studio, chat_engine) -> Session:
    """alice: edited+accepted, accepted after picking her 2nd variant, rejected (edited), an untouched draft of 3
    variants, an edit with an e-mail address, a product description; bob: one edit; alice's comparisons:
    left won, tie, unjudged, right won."""
    data, s = studio, Session(studio)
    s.ids["edited"] = p = new_piece(data, chat_engine, "alice", "poem", {"topic": "autumn rain"})
    data.add_version("alice", p, "Rain on the roof, slow and grey.")
    data.set_verdict("alice", p, status="accepted", rating=5)

    s.ids["picked"] = p = new_piece(data, chat_engine, "alice", "poem", {"topic": "the sea"}, variants=2, seed=1)
    second = data.piece("alice", p)["variants"][1]["id"]
    data.choose("alice", p, second)
    data.set_verdict("alice", p, status="accepted")

    s.ids["rejected"] = p = new_piece(data, chat_engine, "alice", "poem", {"topic": "taxes"})
    data.add_version("alice", p, "An edit of a piece later thrown away.")
    data.set_verdict("alice", p, status="rejected")

    s.ids["untouched"] = new_piece(data, chat_engine, "alice", "poem", {"topic": "snow"}, variants=3, seed=2)

    s.ids["pii"] = p = new_piece(data, chat_engine, "alice", "poem", {"topic": "letters"})
    data.add_version("alice", p, f"Write to me at {EMAIL} when the swallows return.")

    s.ids["product"] = p = new_piece(
        data, chat_engine, "alice", "product-description", {"product": "bamboo water bottle"}
    )
    data.add_version("alice", p, "A light bamboo bottle that keeps water cold all day.")
    data.set_verdict("alice", p, status="accepted")

    s.ids["bob"] = p = new_piece(data, chat_engine, "bob", "poem", {"topic": "bikes"})
    data.add_version("bob", p, "Two wheels and the wind.")

    request = data.piece("alice", s.ids["edited"])["request"]
    prompt = data.piece("alice", s.ids["edited"])["prompt"]
    for name, winner in (("left", "left"), ("tie", "tie"), ("pending", None), ("right", "right")):
        cid = data.new_comparison(
            "alice",
            template="poem",
            fields={"topic": "autumn rain"},
            request=request,
            prompt=prompt,
            left_system="base",
            right_system="fb-1",
            left_text=f"left text ({name})",
            right_text=f"right text ({name})",
        )
        if winner:
            data.judge("alice", cid, winner)
        s.comparisons[name] = cid
    return s
