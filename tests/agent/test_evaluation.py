"""What an evaluation's result says, and records."""

from __future__ import annotations

from netgym_agent.evaluation import EvalResult


def test_an_evaluation_whose_envs_reconnected_says_its_later_episodes_had_other_seeds() -> None:
    plain = EvalResult(step=10, returns=[1.0], lengths=[5], wall_s=1.0, deterministic=True)
    assert plain.reconnect_note == "" and plain.to_record()["reconnects"] == 0
    lost = EvalResult(
        step=10, returns=[1.0], lengths=[5], wall_s=1.0, deterministic=True, reconnects=2
    )
    assert lost.reconnect_note == (
        "; its envs reconnected 2 times, so its later episodes had other seeds"
    )
    assert lost.to_record()["reconnects"] == 2  # in evaluations.jsonl
