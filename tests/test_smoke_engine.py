"""Quick end-to-end check of the engine on the tiny model: greedy equals HF greedy, token for token."""

import torch

from inkwell.generate.settings import GenerationSettings


def test_greedy_matches_hf_generate(tiny_engine):
    prompts = ["The quick brown fox", "Write a product", "Inkwell writes content: ads, emails"]
    settings = GenerationSettings(max_new_tokens=20, min_new_tokens=20, temperature=0, repetition_penalty=1.0)
    results = tiny_engine.generate(prompts, settings)
    model, tok = tiny_engine.model, tiny_engine.tokenizer
    for prompt, result in zip(prompts, results):
        ids = torch.tensor([tiny_engine.encode(prompt)])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                             pad_token_id=tiny_engine.pad_id, eos_token_id=sorted(tiny_engine.eos_ids))
        assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == result.text
        assert result.completion_tokens == 20
