"""Whole-run helpers: where the reference returns of a score come from."""

from __future__ import annotations

import pytest

from gac.runs import reference_returns
from gac.tasks import d4rl_reference


def test_dataset_references_win_then_d4rl_then_none():
    assert reference_returns({"ref_min_score": 1, "ref_max_score": 2}, "hopper-medium-v2") == (1, 2)
    assert reference_returns({}, "hopper-medium-v2") == pytest.approx(d4rl_reference("hopper"))
    assert reference_returns({}, "pointmaze-umaze-goal") is None  # gac datasets store their own
    assert reference_returns({}) is None
