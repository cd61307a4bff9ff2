"""What an evaluation's result says, and records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netgym_agent.algorithms import ALGORITHMS
from netgym_agent.config import config_from_dict
from netgym_agent.evaluation import EvalResult, evaluate
from tests.agent.helpers import SMALL_CARTPOLE
from tests.servers import EnvApi


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


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_stochastic_evaluation_plays_the_same_actions_and_leaves_training_its_randomness(
    envapi: EnvApi, algo: str
) -> None:
    # So that evaluate of the best model gives the return of the evaluation that saved
    # it, stochastic as well; and training draws as it would have without evaluating.
    config = config_from_dict({**SMALL_CARTPOLE, "algo": {"name": algo, "policy": "MlpPolicy"}})
    model = ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    if algo == "dqn":
        model.exploration_rate = 0.5  # as early in training
    kwargs = {"url": envapi.url, "token": envapi.token, "episodes": 6, "num_envs": 2}
    torch.manual_seed(7)
    np.random.seed(7)
    first = evaluate(model, config, deterministic=False, **kwargs)
    after = (torch.rand(1).item(), np.random.rand())
    torch.manual_seed(7)
    np.random.seed(7)
    assert (torch.rand(1).item(), np.random.rand()) == after
    second = evaluate(model, config, deterministic=False, **kwargs)
    assert first.returns == second.returns
