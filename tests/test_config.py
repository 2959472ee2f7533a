"""Configs: old field and mode names load into the new ones, and are refused as overrides;
every choice field, the inference mode and numeric ranges are checked when overrides are
applied."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gac.config import (
    _AT_LEAST,
    PRESETS,
    SECTIONS,
    InferenceConfig,
    ModelConfig,
    OnlineConfig,
    RunConfig,
    apply_overrides,
    preset,
)
from gac.inference import MODES
from gac.sweep.spec import SpecError, parse_spec


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
    assert list(MODES) == ["exploit", "refine", "guided", "random", "elite", "select", "local",
                           "stitch", "lookahead", "arrive"]


def literal_fields():
    cfg = preset("pointmaze-umaze-goal")
    for section in SECTIONS:
        sub = getattr(cfg, section)
        hints = typing.get_type_hints(type(sub))
        for f in dataclasses.fields(sub):
            if typing.get_origin(hints[f.name]) is typing.Literal:
                yield section, f.name, typing.get_args(hints[f.name])


@pytest.mark.parametrize("section,name,allowed", list(literal_fields()))
def test_every_choice_field_is_checked_and_lists_its_choices(section, name, allowed):
    with pytest.raises(ValueError, match=f"{section}.{name}='typo': expected one of "
                                         f"{', '.join(map(str, allowed))}"):
        apply_overrides(preset("pointmaze-umaze-goal"), [f"{section}.{name}=typo"])
    for value in allowed:
        assert getattr(getattr(apply_overrides(preset("pointmaze-umaze-goal"),
                                               [f"{section}.{name}={value}"]), section),
                       name) == value


def test_there_are_choice_fields_and_the_mode_is_checked_against_the_registry():
    assert {(s, n) for s, n, _ in literal_fields()} >= {("model", "prior"), ("online", "collector"),
                                                        ("inference", "constraint")}
    with pytest.raises(ValueError, match=f"inference.mode: unknown inference mode 'exploitt'; "
                                         f"expected {', '.join(MODES)}"):
        apply_overrides(preset("pointmaze-umaze-goal"), ["inference.mode=exploitt"])


@pytest.mark.parametrize("override,message", [
    ("train.steps=0", "train.steps=0: must be at least 1"),
    ("train.steps=-5", "train.steps=-5: must be at least 1"),
    ("model.n_layers=0", "model.n_layers=0: must be at least 1"),
    ("train.batch_size=0", "train.batch_size=0: must be at least 1"),
    ("online.stages=0", "online.stages=0: must be at least 1"),
    ("online.env_steps=2", "online.env_steps=2 is below online.stages=3"),
    ("online.explore_share=1.5", "online.explore_share=1.5: must be in"),
    ("inference.local_share=0", "inference.local_share=0.0: must be in (0, 1]"),
    ("inference.local_dims=-1", "inference.local_dims=-1: must be at least 0"),
    ("train.posterior_temperature=0", "must be positive"),
])
def test_numbers_out_of_range_are_refused(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(").replace("[", r"\[")):
        apply_overrides(preset("pointmaze-umaze-goal"), [override])


def test_every_range_names_a_field():
    cfg = RunConfig()
    known = {f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(getattr(cfg, s))}
    assert set(_AT_LEAST) <= known


def test_the_sweep_spec_takes_its_modes_from_the_registry():
    base = {"name": "s", "tasks": ["pointmaze-umaze-goal"], "seeds": [0]}
    for mode in MODES:
        parse_spec({**base, "eval": {"mode": mode}})
    with pytest.raises(SpecError, match="eval.mode: unknown inference mode 'exploitt'"):
        parse_spec({**base, "eval": {"mode": "exploitt"}})
    with pytest.raises(SpecError, match="inference.mode: unknown inference mode 'exploitt'"):
        parse_spec({**base, "set": ["inference.mode=exploitt"]})
    with pytest.raises(SpecError, match="train.steps=0: must be at least 1"):
        parse_spec({**base, "set": ["train.steps=0"]})


def test_fingerprint_covers_changed_fields_of_its_sections_only():
    from gac.config import fingerprint

    def umaze(*sets: str) -> RunConfig:
        return apply_overrides(preset("maze2d-umaze"), list(sets))

    assert fingerprint(umaze()) == fingerprint(umaze())
    assert fingerprint(umaze()) != fingerprint(umaze("train.lr=0.002"))
    # Inference settings do not name a trained run; they have their own fingerprint.
    assert fingerprint(umaze("inference.replan_every=7")) == fingerprint(umaze())
    assert fingerprint(umaze("inference.replan_every=7"), ("inference",)) != \
        fingerprint(umaze(), ("inference",))
    # A field at its default does not enter: a field added later with a default that keeps the
    # earlier behaviour leaves the fingerprints of earlier runs as they were.
    hidden = ModelConfig().state_hidden
    assert fingerprint(umaze(f"model.state_hidden={hidden}")) == fingerprint(umaze())


def test_overrides_leave_the_given_config_as_it_was():
    base = preset("maze2d-umaze")
    lr = base.train.lr
    changed = apply_overrides(base, ["train.lr=0.123"])
    assert changed.train.lr == 0.123 and base.train.lr == lr


def test_the_presets_explore_online_where_it_measured_better():
    # Measured per task (README, offline-to-online): medium, hopper and walker2d gain more
    # without exploration; umaze, large and the unmeasured halfcheetah keep the automatic delta-y.
    assert preset("maze2d-medium").online.exploration is False
    assert preset("maze2d-medium-dense").online.exploration is False
    assert preset("maze2d-umaze").online.exploration is True
    assert preset("maze2d-large").online.exploration is True
    assert preset("maze2d-medium").online.plan_bank == "offline"
    assert preset("hopper-medium-replay").online.exploration is False
    assert preset("walker2d-medium").online.exploration is False
    assert preset("halfcheetah-medium-replay").online.exploration is True


def test_finetune_help_names_the_presets_that_collect_without_exploration():
    # The list is read off PRESETS, so a preset change cannot leave the help behind.
    from gac.cli import _NO_EXPLORATION

    assert _NO_EXPLORATION.split(", ") == [
        key for key in PRESETS if preset(key).online.exploration is False]
    assert "hopper" in _NO_EXPLORATION and "halfcheetah" not in _NO_EXPLORATION


def test_large_trains_with_exact_two_step_chains_and_the_other_mazes_with_one_pass():
    # Measured per maze (docs/design-notes.md): one pass per update on umaze and medium; on
    # large the exact chains make the decoder at the goal depend on the plan (8.5 against 2.0).
    for name in ("maze2d-umaze", "maze2d-medium"):
        t = preset(name).train
        assert (t.chain_grad, t.langevin_steps, t.langevin_step_size) == ("shared", 1, 0.424)
    for name in ("maze2d-large", "maze2d-large-dense"):
        t = preset(name).train
        assert (t.chain_grad, t.langevin_steps, t.langevin_step_size) == ("exact", 2, 0.3)


def test_walker2ds_refits_keep_the_offline_plans_and_the_mazes_move_them():
    # Measured (docs/design-notes.md, twenty-sixth session): fixed plans end above moving ones
    # on walker2d-medium-replay on every seed, and below them on maze2d-medium.
    assert preset("walker2d-medium-replay").online.offline_plans == "fixed"
    assert preset("maze2d-medium").online.offline_plans == "move"
    assert preset("hopper-medium-replay").online.offline_plans == "move"
    assert OnlineConfig().offline_plans == "move" and OnlineConfig().refit_lr_factor == 0.1
    with pytest.raises(ValueError, match="refit_lr_factor"):
        apply_overrides(preset("maze2d-umaze"), ["online.refit_lr_factor=-1"])
