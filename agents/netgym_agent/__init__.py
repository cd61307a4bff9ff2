"""netgym's training agent: SB3 PPO, A2C and DQN on envs served by a netgym envapi.

``python -m netgym_agent train CONFIG`` trains from a YAML config into a run
folder with checkpoints, evaluations, TensorBoard logs and the final model;
``--resume`` continues a run from its last complete checkpoint. See
docs/agent.md.
"""

from __future__ import annotations

from netgym.extras import require_extra

require_extra("agent", ("stable_baselines3", "yaml", "tensorboard"), "netgym-train")

__all__: list[str] = []
