"""Locomotion datasets: every D4RL kind made from the committed policies and validated, behaviour
training/export with SB3 (optional), D4RL files read and split, v4/v5 normalisation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gac.data.behaviour import PlainActor, load_policies, policies_dir
from gac.data.datasets import make_dataset, resolve_dataset
from gac.data.hdf5 import load_hdf5
from gac.data.locomotion_generator import LocomotionDataConfig, generate_locomotion_dataset
from gac.data.store import DataError, TrajectoryStore
from gac.runs import load_data, reference_returns
from gac.tasks import d4rl_reference, get_task
from gac.tasks.locomotion import BODIES, HORIZON, KINDS


def validate(store: TrajectoryStore, task_name: str, steps: int) -> None:
    """What every gac locomotion dataset must satisfy."""
    task = get_task(task_name)
    body = BODIES[task.body]
    n = store.num_steps
    assert store.observations.shape == (n, body.obs_dim) and store.actions.shape == (n, body.act_dim)
    assert store.rewards is not None and store.rewards.shape == (n,)
    assert np.abs(store.actions).max() <= 1.0
    assert n >= steps
    ends = np.append(store.starts[1:], n) - 1
    flags = store.terminals | store.timeouts
    assert not (store.terminals & store.timeouts).any()
    assert flags[ends].all() and flags.sum() == store.num_episodes  # flags only at episode ends
    lengths = store.lengths
    # The 1000-step limit sets timeouts; a shorter episode ended by a true termination.
    np.testing.assert_array_equal(store.timeouts[ends], lengths == HORIZON)
    np.testing.assert_array_equal(store.terminals[ends], lengths < HORIZON)
    np.testing.assert_allclose(store.returns, np.add.reduceat(store.rewards.astype(np.float64),
                                                              store.starts), rtol=1e-6)
    m = store.metadata
    assert m["task"] == task_name and m["env_id"] == task.env_id and task.env_id.endswith("-v5")
    assert m["ref_max_score"] > m["ref_min_score"]
    assert (m["action_low"], m["action_high"]) == (-1.0, 1.0)


@pytest.fixture(scope="module")
def hopper_policies():
    if not (policies_dir() / "hopper" / "manifest.json").exists():
        pytest.skip("no committed hopper policies")
    return load_policies("hopper")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_from_the_committed_policies(hopper_policies, kind):
    task = get_task(f"hopper-{kind}")
    store = generate_locomotion_dataset(task, LocomotionDataConfig(steps=200, seed=1),
                                        policies=hopper_policies, progress=False)
    validate(store, task.name, 200)
    assert (store.metadata["ref_min_score"], store.metadata["ref_max_score"]) == \
        hopper_policies.references
    if kind == "medium-expert":
        assert store.metadata["policy_step"] == [hopper_policies.medium_step,
                                                 hopper_policies.expert_step]


@pytest.mark.parametrize("body", sorted(set(BODIES) - {"hopper"}))
def test_other_bodies_make_data_from_their_committed_policies(body):
    if not (policies_dir() / body / "manifest.json").exists():
        pytest.skip(f"no committed {body} policies")
    store = generate_locomotion_dataset(get_task(f"{body}-medium-expert"),
                                        LocomotionDataConfig(steps=10), progress=False)
    validate(store, f"{body}-medium-expert", 10)


def test_levels_of_the_committed_policies():
    """Medium is about a third of the expert (D4RL's definition), and expert >> random."""
    for body in BODIES:
        if not (policies_dir() / body / "manifest.json").exists():
            continue
        m = load_policies(body).manifest
        lo, hi = m["references"]["random"], m["references"]["expert"]
        medium = m["medium"]["stochastic"]["mean"]
        assert hi > lo + 500
        assert 0.2 < (medium - lo) / (hi - lo) < 0.6, (body, lo, medium, hi)


def test_generation_is_deterministic_and_files_round_trip(hopper_policies, tmp_path):
    path = make_dataset("hopper-medium", steps=300, seed=3, out=tmp_path / "a.hdf5", progress=False)
    again = make_dataset("hopper-medium", steps=300, seed=3, out=tmp_path / "b.hdf5", progress=False)
    a, b = load_hdf5(path), load_hdf5(again)
    np.testing.assert_array_equal(a.observations, b.observations)
    validate(a, "hopper-medium", 300)
    assert a.metadata["policies_sha"] == hopper_policies.sha
    with pytest.raises(FileExistsError):
        make_dataset("hopper-medium", steps=300, out=path, progress=False)


def test_cached_default_dataset_is_remade_when_the_policies_change(hopper_policies, monkeypatch):
    import gac.data.behaviour as behaviour
    import gac.tasks.locomotion as locomotion

    monkeypatch.setattr(locomotion, "DEFAULT_STEPS", 50)
    first = resolve_dataset("hopper-random")
    path = first.metadata["source"]
    assert resolve_dataset("hopper-random").metadata["source"] == path
    mtime = __import__("os").path.getmtime(path)
    monkeypatch.setattr(behaviour, "policies_fingerprint", lambda body, root=None: "retrained")
    resolve_dataset("hopper-random")
    assert __import__("os").path.getmtime(path) > mtime


# ----------------------------------------------------------------------------- D4RL files
def write_d4rl_hopper(path, lengths=(5, 7, 4, 6), ends=("term", "timeout", "term", "open")):
    """A file laid out like D4RL's hopper_*-v2.hdf5: flat arrays, infos/* and metadata/*."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    for end, how in zip(np.cumsum(lengths) - 1, ends, strict=True):
        if how == "term":
            terminals[end] = True
        elif how == "timeout":
            timeouts[end] = True
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["observations"], f["next_observations"] = obs, np.roll(obs, -1, 0)
        f["actions"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["rewards"] = rng.uniform(0, 3, n).astype(np.float32)
        f["terminals"], f["timeouts"] = terminals, timeouts
        f["infos/action_log_probs"] = rng.normal(size=n).astype(np.float32)
        f["infos/qpos"], f["infos/qvel"] = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))
        f["metadata/algorithm"] = np.bytes_("SAC")
        f["metadata/policy/fc0/weight"] = rng.normal(size=(256, 11)).astype(np.float32)
    return path


def test_d4rl_locomotion_file_is_read_split_and_scored_with_d4rl_references(tmp_path, monkeypatch):
    path = write_d4rl_hopper(tmp_path / "hopper_medium-v2.hdf5")
    store = resolve_dataset(str(path))
    np.testing.assert_array_equal(store.starts, [0, 5, 12, 16])
    np.testing.assert_array_equal(store.lengths, [5, 7, 4, 6])
    with h5py.File(path) as f:
        rewards = f["rewards"][()].astype(np.float64)
    np.testing.assert_allclose(store.returns, np.add.reduceat(rewards, [0, 5, 12, 16]))
    m = store.metadata
    assert m["task"] == "hopper-medium-v2" and m["env_id"] == "Hopper-v4"
    assert reference_returns(m) == d4rl_reference("hopper")
    assert load_data(str(path))[1] == "hopper-medium-v2"  # what `gac train FILE` trains against
    # By name, from D4RL's download folder.
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    assert resolve_dataset("hopper-medium-v2").num_episodes == 4
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        resolve_dataset("hopper-expert-v2")
    with pytest.raises(ValueError, match="cannot be made"):
        make_dataset("hopper-medium-v2", steps=10, out=tmp_path / "x.hdf5")


def test_d4rl_file_of_the_wrong_body_is_refused(tmp_path):
    path = write_d4rl_hopper(tmp_path / "walker2d_medium_replay-v2.hdf5")
    with pytest.raises(DataError, match="is this really walker2d-medium-replay-v2"):
        resolve_dataset(str(path))


def test_v5_datasets_use_measured_references_v4_files_d4rl_ones(hopper_policies, tmp_path):
    ours = load_hdf5(make_dataset("hopper-expert", steps=10, out=tmp_path / "e.hdf5",
                                  progress=False))
    lo, hi = reference_returns(ours.metadata)
    assert (lo, hi) == hopper_policies.references != d4rl_reference("hopper")
    assert ours.metadata["env_id"] == "Hopper-v5"
    d4rl = resolve_dataset(str(write_d4rl_hopper(tmp_path / "hopper_expert-v2.hdf5")))
    assert reference_returns(d4rl.metadata) == (-20.272305, 3234.3)


# ----------------------------------------------------------------------------- SB3 training
def test_train_resume_export_and_exact_replay(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from gac.data.behaviour.ppo import export_policies, train_behaviour
    from gac.tasks.locomotion import make_mujoco_env

    tiny = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "snapshot_every": 128,
            "eval_episodes": 1}
    run = tmp_path / "run"
    state = train_behaviour("hopper", budget=256, seed=0, out_dir=run, log=lambda s: None, **tiny)
    assert [s["step"] for s in state["snapshots"]] == [0, 128, 256] and state["finished"]
    state = train_behaviour("hopper", budget=384, out_dir=run, log=lambda s: None)  # resume
    assert [s["step"] for s in state["snapshots"]] == [0, 128, 256, 384]
    assert len(state["sessions"]) == 2

    # The exported numpy actor is SB3's policy.
    venv = VecNormalize.load(str(run / "checkpoint/vecnormalize.pkl"),
                             DummyVecEnv([lambda: make_mujoco_env("Hopper-v5")]))
    model = PPO.load(run / "checkpoint/model.zip", device="cpu")
    with np.load(run / "actors" / "s000000384.npz") as z:
        actor = PlainActor.from_arrays(z)
    obs = np.random.default_rng(0).normal(size=(8, 11))
    sb3, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    np.testing.assert_allclose(actor(obs), sb3, atol=1e-5)

    root = tmp_path / "policies"
    manifest = export_policies("hopper", run, root, medium_fraction=0.0, reference_episodes=2,
                               log=lambda s: None)
    assert manifest["medium"]["step"] == 128 and manifest["expert"]["step"] in (256, 384)
    assert manifest["replay"]["steps"] == 128
    pol = load_policies("hopper", root)
    task = get_task("hopper-medium-replay")
    exact = generate_locomotion_dataset(task, LocomotionDataConfig(steps=128), pol,
                                        replay_dir=run, progress=False)
    with np.load(run / "rollouts" / "s000000128.npz") as z:
        recorded = z["e0_obs"]
    assert exact.num_steps <= 128  # only whole episodes from before the medium snapshot
    np.testing.assert_array_equal(exact.observations, recorded[:exact.num_steps])
    regenerated = generate_locomotion_dataset(task, LocomotionDataConfig(steps=128), pol,
                                              progress=False)
    for store in (exact, regenerated):
        assert store.metadata["ref_max_score"] == manifest["references"]["expert"]
    validate(regenerated, task.name, 128)
