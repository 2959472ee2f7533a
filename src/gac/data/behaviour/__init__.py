"""Behaviour policies for the locomotion datasets, in three parts:

- ``actor``: the numpy actor (``PlainActor``) and ``run_episode``: all that making datasets
  needs;
- ``store``: the committed policies (``policies/{body}/``): ``load_policies``, fingerprints,
  the medium-replay size;
- ``ppo``: training them with Stable-Baselines3 PPO and exporting them to the store (the
  ``behaviour`` extra; `gac behaviour train` / `gac behaviour export`).

The names of the first two are importable from here; ``ppo`` (which needs the locomotion
tasks) is imported on its own.
"""

from gac.data.behaviour.actor import HORIZON, PlainActor, Policy, export_actor, run_episode
from gac.data.behaviour.store import (
    BehaviourPolicies,
    load_policies,
    policies_dir,
    policies_fingerprint,
    replay_size,
)

__all__ = [
    "HORIZON",
    "BehaviourPolicies",
    "PlainActor",
    "Policy",
    "export_actor",
    "load_policies",
    "policies_dir",
    "policies_fingerprint",
    "replay_size",
    "run_episode",
]
