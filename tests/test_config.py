"""Configs: old field and mode names load into the new ones, and are refused as overrides."""

from __future__ import annotations

import pytest

from gac.config import InferenceConfig, RunConfig, apply_overrides, preset
from gac.inference import MODES


def test_a_config_saved_with_the_old_inference_names_loads_into_the_new_ones():
    old = preset("pointmaze-umaze-goal").to_dict()
    inference = old["inference"]
    for name in ("ascent_steps", "ascent_lr", "langevin_steps", "langevin_step_size",
                 "langevin_noise"):
        del inference[name]
    inference.update(n_steps=7, step_size=0.2, noise=False, mode="prior")
    cfg = RunConfig.from_dict(old).inference
    assert (cfg.ascent_steps, cfg.langevin_steps) == (7, 7)
    assert (cfg.ascent_lr, cfg.langevin_step_size) == (0.2, 0.2)
    assert cfg.langevin_noise == 0.0 and cfg.mode == "random"
    # A new name written beside an old one wins.
    inference.update(ascent_steps=3)
    assert RunConfig.from_dict(old).inference.ascent_steps == 3
    assert RunConfig.from_dict(old).inference.langevin_steps == 7


def test_old_names_are_refused_as_overrides_with_the_new_ones():
    cfg = preset("pointmaze-umaze-goal")
    with pytest.raises(ValueError, match="inference.ascent_steps or inference.langevin_steps"):
        apply_overrides(cfg, ["inference.n_steps=2"])
    with pytest.raises(ValueError, match="inference.ascent_lr or inference.langevin_step_size"):
        apply_overrides(cfg, ["inference.step_size=0.1"])
    with pytest.raises(ValueError, match="inference.langevin_noise"):
        apply_overrides(cfg, ["inference.noise=false"])
    with pytest.raises(ValueError, match="renamed 'random'"):
        apply_overrides(cfg, ["inference.mode=prior"])


def test_the_default_mode_is_registered():
    assert InferenceConfig().mode in MODES
    assert list(MODES) == ["exploit", "refine", "guided", "random", "elite"]
