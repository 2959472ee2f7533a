"""HDF5 I/O: round trips, D4RL-layout files and their quirks, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from gac.data.hdf5 import load_hdf5, save_hdf5
from gac.data.store import DataError, DataWarning, Episode, TrajectoryStore


def toy_store(return_only: tuple[int, ...] = ()) -> TrajectoryStore:
    rng = np.random.default_rng(0)
    episodes = []
    for e, length in enumerate((5, 12, 7)):
        rewards = rng.normal(size=length).astype(np.float32)
        episodes.append(Episode(rng.normal(size=(length, 4)).astype(np.float32),
                                rng.uniform(-1, 1, (length, 2)).astype(np.float32),
                                None if e in return_only else rewards, terminal=e == 1,
                                ret=float(rewards.astype(np.float64).sum())))
    meta = {"task": "pointmaze-umaze-goal", "generator": "test", "seed": 3, "ref_min_score": 1.5,
            "ref_max_score": 99.25, "horizon": 300, "layout": {"obs": [0, 1]}, "note": None,
            "tags": ["a", "b"], "goal_in_obs": True, "authors": {"b", "a"}}
    return TrajectoryStore.from_episodes(episodes, meta)


def assert_same(a: TrajectoryStore, b: TrajectoryStore) -> None:
    for key in ("observations", "actions", "terminals", "timeouts", "starts", "returns"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    if a.rewards is None:
        assert b.rewards is None
    else:
        np.testing.assert_array_equal(a.rewards, b.rewards)  # NaN == NaN here


def write(path: Path, **fields: object) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in fields.items():
            f.create_dataset(key, data=value)
    return path


def d4rl_fields(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": rng.normal(size=(n, 4)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}


# ----------------------------------------------------------------------------- round trips
def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    store = toy_store()
    path = save_hdf5(store, tmp_path / "toy.hdf5")
    back = load_hdf5(path)
    assert_same(store, back)
    for key, value in store.metadata.items():
        assert back.metadata[key] == (sorted(value) if isinstance(value, set) else value), key
    store.metadata["nested"] = {"n": np.int64(3), "v": np.arange(2)}  # numpy inside JSON
    assert load_hdf5(save_hdf5(store, tmp_path / "np.hdf5")).metadata["nested"] == {"n": 3,
                                                                                     "v": [0, 1]}
    assert back.metadata["source"] == str(path)
    # A second round trip changes nothing, and the file it came from is the source.
    again = load_hdf5(save_hdf5(back, tmp_path / "again.hdf5"))
    assert_same(store, again)
    assert again.metadata["source"] == str(tmp_path / "again.hdf5")


def test_episodes_known_by_return_only_round_trip(tmp_path):
    store = toy_store(return_only=(1,))
    back = load_hdf5(save_hdf5(store, tmp_path / "mixed.hdf5"))
    assert_same(store, back)
    assert back.episode(1).rewards is None and back.episode(0).rewards is not None
    assert back.returns[1] == pytest.approx(store.returns[1])

    only = toy_store(return_only=(0, 1, 2))
    assert only.rewards is None
    back = load_hdf5(save_hdf5(only, tmp_path / "only.hdf5"))
    assert back.rewards is None
    np.testing.assert_array_equal(back.returns, only.returns)
    with h5py.File(tmp_path / "only.hdf5") as f:
        assert "rewards" not in f
    # Re-splitting needs step rewards: a clear error, not made-up returns.
    with pytest.raises(DataError, match="only.hdf5.*'rewards'"):
        load_hdf5(tmp_path / "only.hdf5", split="locomotion")


def test_generated_dataset_round_trips(tiny_maze_path, tmp_path):
    store = load_hdf5(tiny_maze_path)
    assert_same(store, load_hdf5(save_hdf5(store, tmp_path / "copy.hdf5")))
    with h5py.File(tiny_maze_path) as f:
        assert f["infos/goal"].shape == (store.num_steps, 2)
        assert f.attrs["format"] == "gac-d4rl-v1"


def test_nothing_is_overwritten_unless_asked(tmp_path):
    path = save_hdf5(toy_store(), tmp_path / "a.hdf5")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="a.hdf5"):
        save_hdf5(toy_store(return_only=(0,)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.hdf5"]  # no temp file left behind
    save_hdf5(toy_store(return_only=(0,)), path, overwrite=True)
    assert load_hdf5(path).episode(0).rewards is None


# ----------------------------------------------------------------------------- D4RL layout
def maze2d_stream(seed: int = 0) -> tuple[dict[str, np.ndarray], list[int]]:
    """D4RL's maze2d recipe: a moving point, goal changes flagged in ``timeouts``, and the row
    after each goal change repeating the previous observation (the state is not advanced)."""
    rng = np.random.default_rng(seed)
    n = 120
    fields = d4rl_fields(n, seed)
    pos, vel = np.zeros(2), np.array([0.3, -0.2])
    obs = []
    goal_changes = [19, 50, 51 + 30]  # timeouts here; the next row repeats
    unflagged = 100  # a repeat whose timeout flag is missing: still a cut
    i = 0
    while len(obs) < n:
        obs.append(np.concatenate([pos, vel]))
        if i in goal_changes or i == unflagged:
            obs.append(obs[-1].copy())
            i += 1
        vel = vel + 0.05 * rng.normal(size=2)
        pos = pos + 0.01 * vel
        i += 1
    fields["observations"] = np.array(obs[:n], np.float32)
    fields["timeouts"][goal_changes] = True
    # A ball at rest repeats its observation legitimately: no cut there.
    fields["observations"][110:113] = [1.0, 1.0, 0.0, 0.0]
    fields["infos/goal"] = rng.normal(size=(n, 2)).astype(np.float32)
    fields["infos/qpos"] = fields["observations"][:, :2]
    fields["metadata/algorithm"] = np.bytes_(b"waypoint")
    return fields, [0, 20, 51, 82, 101]


def test_maze2d_stream_is_cut_at_goal_changes_and_repeats(tmp_path):
    fields, starts = maze2d_stream()
    path = write(tmp_path / "maze2d-umaze-v1.hdf5", **fields)
    store = load_hdf5(path)  # auto: the name says maze2d
    np.testing.assert_array_equal(store.starts, starts)
    np.testing.assert_allclose(store.returns,
                               np.add.reduceat(fields["rewards"].astype(np.float64), starts))
    # Every episode's rows now follow one another: no repeated row inside an episode.
    for e in range(store.num_episodes):
        o = store.episode(e).observations
        repeats = np.all(o[1:] == o[:-1], axis=1) & np.any(o[:-1, 2:4] != 0, axis=1)
        assert not repeats.any()
    # Split by timeouts alone, the unflagged repeat would hide inside an episode.
    np.testing.assert_array_equal(load_hdf5(path, split="locomotion").starts, [0, 20, 51, 82])


def test_maze2d_uses_next_observations_where_given(tmp_path):
    fields = d4rl_fields(30)
    obs = np.cumsum(np.full((31, 4), 0.01, np.float32), axis=0)
    obs[16:] += 5.0  # a jump after row 15, without any flag
    fields["observations"] = obs[:30]
    fields["next_observations"] = obs[1:31].copy()
    fields["next_observations"][15] = obs[15] + 0.01  # the true successor of row 15
    path = write(tmp_path / "maze2d-next.hdf5", **fields)
    np.testing.assert_array_equal(load_hdf5(path).starts, [0, 16])


def test_locomotion_file_splits_at_terminals_and_timeouts(tmp_path):
    fields = d4rl_fields(40)
    fields["terminals"][[9, 25]] = True
    fields["timeouts"][[17, 39]] = True
    fields["next_observations"] = np.roll(fields["observations"], -1, axis=0)
    fields["infos/qpos"] = np.zeros((40, 3), np.float32)
    path = write(tmp_path / "hopper-medium-v2.hdf5", **fields)
    store = load_hdf5(path)
    np.testing.assert_array_equal(store.starts, [0, 10, 18, 26])
    np.testing.assert_array_equal(store.lengths, [10, 8, 8, 14])
    r = fields["rewards"].astype(np.float64)
    np.testing.assert_allclose(store.returns, [r[:10].sum(), r[10:18].sum(), r[18:26].sum(),
                                               r[26:].sum()])
    assert [store.episode(e).terminal for e in range(4)] == [True, False, True, False]
    assert store.metadata["source"] == str(path)


def test_d4rl_column_vectors_and_trailing_partial_episode(tmp_path):
    fields = d4rl_fields(20)
    fields["rewards"] = fields["rewards"][:, None]  # some D4RL files store (N, 1)
    fields["terminals"] = fields["terminals"][:, None].astype(np.float32)
    fields["timeouts"][[4, 11]] = True  # no flag at the end: the last episode is partial
    store = load_hdf5(write(tmp_path / "walker2d.hdf5", **fields))
    np.testing.assert_array_equal(store.lengths, [5, 7, 8])
    assert store.rewards.shape == (20,)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("change", "field", "problem"), [
    (lambda f: f.pop("actions"), "actions", "missing"),
    (lambda f: f.pop("timeouts"), "timeouts", "missing"),
    (lambda f: f.update(rewards=f["rewards"][:-3]), "rewards", "length mismatch"),
    (lambda f: f.update(timeouts=f["timeouts"][:-1]), "timeouts", "length mismatch"),
    (lambda f: f.update(next_observations=f["observations"][:-1]), "next_observations",
     "length mismatch"),
    (lambda f: f["observations"].__setitem__((7, 2), np.nan), "observations", "NaN/inf"),
    (lambda f: f["rewards"].__setitem__(3, np.inf), "rewards", "NaN/inf"),
    (lambda f: f["actions"].__setitem__((0, 1), -np.inf), "actions", "NaN/inf"),
    (lambda f: f.update(observations=f["observations"][:, 0]), "observations", "2-D"),
    (lambda f: f.update(rewards=np.zeros((50, 2), np.float32)), "rewards", "1-D"),
    (lambda f: f.update(actions=np.array([b"x"] * 50)), "actions", "not numeric"),
    # float64 values beyond float32's range become inf when stored: checked after the cast
    (lambda f: f.update(observations=f["observations"].astype(np.float64) * [1, 1, 1, 1e39]),
     "observations", "beyond float32's range"),
    (lambda f: f.update(rewards=np.full(50, -1e39)), "rewards", "50 NaN/inf"),
    (lambda f: f.update(terminals=np.full(50, 2.0)), "terminals", "other than 0/1"),
    (lambda f: f.update(timeouts=np.arange(50) % 3), "timeouts", "other than 0/1"),
])
def test_bad_fields_are_named(tmp_path, change, field, problem):
    fields = d4rl_fields()
    change(fields)
    path = write(tmp_path / "bad.hdf5", **fields)
    with pytest.raises(DataError) as info:
        load_hdf5(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and problem in message


def test_empty_dataset(tmp_path):
    fields = {k: v[:0] for k, v in d4rl_fields().items()}
    path = write(tmp_path / "empty.hdf5", **fields)
    with pytest.raises(DataError, match=r"empty\.hdf5: empty dataset.*'observations'"):
        load_hdf5(path)


def test_group_instead_of_dataset(tmp_path):
    fields = d4rl_fields()
    del fields["observations"]
    fields["observations/x"] = np.zeros(50)
    with pytest.raises(DataError, match=r"group\.hdf5: field 'observations' is a group"):
        load_hdf5(write(tmp_path / "group.hdf5", **fields))


def test_actions_outside_the_action_space(tmp_path):
    fields = d4rl_fields()
    fields["actions"][[4, 9], 0] = 1.5
    path = write(tmp_path / "wide.hdf5", **fields)
    with pytest.warns(DataWarning, match=r"wide\.hdf5: field 'actions' has 2 of 50 step\(s\) "
                                         r"outside \[-1, 1\] \(largest \|a\| 1\.5\)"):
        load_hdf5(path)  # no bounds known: accepted, with a warning (tanh cannot reach them)
    with pytest.raises(DataError, match=r"wide\.hdf5: field 'actions' has 2 step\(s\) outside "
                                        r"the action space.*first at step 4"):
        load_hdf5(path, action_low=-1.0, action_high=1.0)
    # gac files carry their bounds: checked without being asked.
    store = toy_store()
    store.actions[2, 1] = -3.0
    store.metadata.update(action_low=-1.0, action_high=1.0)
    with pytest.raises(DataError, match=r"bounded\.hdf5: field 'actions'.*outside"):
        load_hdf5(save_hdf5(store, tmp_path / "bounded.hdf5"))


def test_not_hdf5_truncated_and_missing_files(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("observations,actions\n1,2\n")
    with pytest.raises(DataError, match=r"notes\.hdf5: not an HDF5 file"):
        load_hdf5(text)

    full = save_hdf5(toy_store(), tmp_path / "full.hdf5")
    data = full.read_bytes()
    for name, keep in (("half.hdf5", len(data) // 2), ("head.hdf5", 600)):
        cut = tmp_path / name
        cut.write_bytes(data[:keep])
        with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: .*(truncated|HDF5)"):
            load_hdf5(cut)

    with pytest.raises(DataError, match=r"nowhere\.hdf5: no such file"):
        load_hdf5(tmp_path / "nowhere.hdf5")
    with pytest.raises(DataError, match="not a file"):
        load_hdf5(tmp_path)


def test_episodes_shorter_than_the_minimum(tmp_path):
    path = save_hdf5(toy_store(), tmp_path / "short.hdf5")
    assert load_hdf5(path, min_episode_length=5).num_episodes == 3
    with pytest.raises(DataError, match=r"short\.hdf5: 2 episode\(s\) shorter than the required "
                                        r"8 steps \(first: episode 0 with 5 steps\)"):
        load_hdf5(path, min_episode_length=8)


def test_broken_episode_index_fields(tmp_path):
    path = save_hdf5(toy_store(), tmp_path / "idx.hdf5")
    with h5py.File(path, "a") as f:
        del f["episode_starts"]
        f["episode_starts"] = np.array([0, 12, 5])
    with pytest.raises(DataError, match=r"idx\.hdf5: field 'episode_starts'"):
        load_hdf5(path)
    with h5py.File(path, "a") as f:
        del f["episode_starts"]
        f["episode_starts"] = np.array([0, 5])
    with pytest.raises(DataError, match=r"idx\.hdf5: field 'episode_returns' has 3 entries"):
        load_hdf5(path)
    with pytest.raises(DataError, match="unknown split"):
        load_hdf5(path, split="bogus")  # type: ignore[arg-type]


def test_refuses_to_write_an_empty_store(tmp_path):
    store = toy_store()
    empty = TrajectoryStore(store.observations[:0], store.actions[:0], None,
                            store.terminals[:0], store.timeouts[:0], store.starts[:0],
                            store.returns[:0])
    with pytest.raises(DataError, match="empty"):
        save_hdf5(empty, tmp_path / "e.hdf5")
    assert not (tmp_path / "e.hdf5").exists()


@pytest.mark.parametrize("name", ["action_low", "action_high"])
def test_action_bounds_of_the_wrong_length_are_named(tmp_path, name):
    path = write(tmp_path / "bounds.hdf5", **d4rl_fields())
    with h5py.File(path, "a") as f:
        f.attrs[name] = np.ones(3) * (1 if name == "action_high" else -1)
    with pytest.raises(DataError, match=rf"bounds\.hdf5: {name} has shape \(3,\), but the "
                                        rf"actions have shape \(50, 2\)"):
        load_hdf5(path)
    with pytest.raises(DataError, match=r"action_low has shape \(5,\)"):
        load_hdf5(write(tmp_path / "b2.hdf5", **d4rl_fields()), action_low=np.zeros(5))


def test_streams_cut_into_one_step_episodes(tmp_path):
    fields = d4rl_fields()
    fields["terminals"][:] = True
    with pytest.raises(DataError, match=r"every step ends an episode \('terminals' true at 50 of "
                                        r"50 steps"):
        load_hdf5(write(tmp_path / "allterm.hdf5", **fields))
    fields["terminals"][::10] = False  # 45 of 50: mostly one-step episodes
    with pytest.warns(DataWarning, match=r"of \d+ episodes are one step long"):
        load_hdf5(write(tmp_path / "most.hdf5", **fields))


def test_a_json_attribute_that_does_not_parse_is_named(tmp_path):
    path = write(tmp_path / "attrs.hdf5", **d4rl_fields())
    with h5py.File(path, "a") as f:
        f.attrs["policy"] = 'json:{"hidden": [64, 64'
    with pytest.raises(DataError, match=r"attrs\.hdf5: attribute 'policy' is marked as JSON but "
                                        r"does not parse") as info:
        load_hdf5(path)
    assert "corrupt" not in str(info.value)
