"""The feedback loop: creators' edits, choices and blind comparisons -> SFT/DPO rows -> a LoRA trained in the
background -> a held-out report -> blind rounds -> promotion.

* `export.export_rows(data, owner)` - training rows from the studio's tables (PII redacted by default).
* `leaderboard.leaderboard(comparisons)` - Bradley-Terry ratings of systems from blind comparisons.
* `jobs.start_job(data, owner, stage=..., base_model=..., runs_dir=...)` / `jobs.poll_job(data, job_id)` -
  a training run in its own process (`python -m inkwell.feedback.job RUN_DIR`) and its progress.

Feedback may call train and evaluate; neither of them imports feedback.
"""
