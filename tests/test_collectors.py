"""Collectors: how a group of online episodes is split into shards (the unit both collectors
play), and an online run playing through the collector it is handed."""

from __future__ import annotations

import pytest

from gac.collectors import LocalCollector, split_group


@pytest.mark.parametrize("n, shards, explore", [(16, 2, 16), (5, 3, 4), (3, 8, 1), (7, 1, 0), (1, 2, 1)])
def test_shards_cover_the_group_in_order(n, shards, explore):
    parts = split_group(n, shards, explore)
    assert len(parts) == min(shards, n)
    assert [p[0] for p in parts] == [sum(p[1] for p in parts[:i]) for i in range(len(parts))]
    assert sum(p[1] for p in parts) == n
    assert max(p[1] for p in parts) - min(p[1] for p in parts) <= 1
    assert sum(p[2] for p in parts) == explore  # the group's first `explore` episodes explore
    assert all(0 <= p[2] <= p[1] for p in parts)


class Recording(LocalCollector):
    """A local collector that notes the shards it plays and whether it was closed."""

    def __init__(self, task, n_envs):
        super().__init__(task, n_envs)
        self.played, self.closed = [], False

    def collect(self, model, bank, icfg, ocfg, y_plus, seed, shards):
        self.played.append(shards)
        return super().collect(model, bank, icfg, ocfg, y_plus, seed, shards)

    def close(self):
        self.closed = True
        super().close()


def test_an_online_run_plays_through_the_collector_it_is_handed(tiny_maze_path, tmp_path):
    from gac.config import apply_overrides, preset
    from gac.data.hdf5 import load_hdf5
    from gac.tasks import get_task
    from gac.train.offline import Trainer
    from gac.train.online import OnlineRun

    cfg = apply_overrides(preset("pointmaze-umaze-goal"), [
        "model.d_model=32", "model.n_layers=1", "model.context_steps=4", "online.n_envs=3",
        "online.collect_shards=2", "online.explore_steps=2", "inference.n_starts=2",
        "inference.ascent_steps=2", "online.ref_pool=data"])  # y+ without an evaluation first
    task = get_task("pointmaze-umaze-goal")
    trainer = Trainer(cfg, load_hdf5(tiny_maze_path), tmp_path, return_scale=100.0)
    collector = Recording(task, 3)
    run = OnlineRun(trainer, task, tmp_path, (0.0, 100.0), collector=collector)
    episodes = run.collect_group()
    assert collector.played == [[(0, 1, 1), (1, 2, 2)]] and len(episodes) == 3
    run.close()
    assert collector.closed
