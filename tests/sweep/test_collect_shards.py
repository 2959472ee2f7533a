"""How a group of online episodes is split into shards (the unit both collectors play)."""

from __future__ import annotations

import pytest

from gac.collectors import split_group


@pytest.mark.parametrize("n, shards, explore", [(16, 2, 16), (5, 3, 4), (3, 8, 1), (7, 1, 0), (1, 2, 1)])
def test_shards_cover_the_group_in_order(n, shards, explore):
    parts = split_group(n, shards, explore)
    assert len(parts) == min(shards, n)
    assert [p[0] for p in parts] == [sum(p[1] for p in parts[:i]) for i in range(len(parts))]
    assert sum(p[1] for p in parts) == n
    assert max(p[1] for p in parts) - min(p[1] for p in parts) <= 1
    assert sum(p[2] for p in parts) == explore  # the group's first `explore` episodes explore
    assert all(0 <= p[2] <= p[1] for p in parts)
