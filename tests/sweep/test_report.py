"""Aggregation across seeds: mean, std, bootstrap interval, IQM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gac.sweep.report import aggregate, bootstrap_ci, iqm


def test_iqm_cuts_a_quarter_from_each_end():
    assert iqm(np.array([1.0, 2.0, 3.0])) == 2.0  # fewer than 4 runs: the mean
    assert iqm(np.array([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0])) == pytest.approx(3.5)
    scipy = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).normal(size=11)
    assert iqm(x) == pytest.approx(scipy.trim_mean(x, 0.25))


def test_aggregate_and_bootstrap_interval():
    x = [10.0, 12.0, 14.0, 16.0, 18.0]
    a = aggregate(x)
    assert a["n"] == 5 and a["mean"] == 14.0 and a["std"] == pytest.approx(np.std(x, ddof=1))
    assert 10.0 <= a["ci_low"] < 14.0 < a["ci_high"] <= 18.0
    assert bootstrap_ci(np.array(x)) == bootstrap_ci(np.array(x))  # seeded: reports rebuild identically
    one = aggregate([3.0])
    assert one["mean"] == 3.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
