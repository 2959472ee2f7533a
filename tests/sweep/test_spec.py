"""Sweep files: grid expansion, stable readable trial ids, and clear errors before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gac.sweep.spec import SpecError, expand, load_spec, parse_spec


def spec(**kw):
    return parse_spec({"name": "s", "tasks": ["pointmaze-umaze-goal"], **kw}, source="<test>")


def test_grid_expands_tasks_variants_grid_and_seeds_in_a_stable_order():
    s = spec(tasks=["pointmaze-umaze-goal", "pointmaze-medium-goal"], seeds=[0, 1, 2],
             grid={"train.lr": ["1e-3", 3e-4], "online.exploration": [True, False]},
             variants={"auto": [], "dy5": ["online.delta_y=5"]}, set={"train.steps": 10})
    trials = expand(s)
    assert len(trials) == 2 * 2 * 2 * 2 * 3
    assert len({t.id for t in trials}) == len(trials)
    first = trials[0]
    assert first.id == "pointmaze-umaze-goal__auto__train.lr=1e-3__online.exploration=true__s0"
    assert first.overrides == ("train.steps=10", "train.lr=1e-3", "online.exploration=true")
    assert first.setting == "auto, train.lr=1e-3, online.exploration=true"
    dy5 = next(t for t in trials if t.id.startswith("pointmaze-umaze-goal__dy5__train.lr=0.0003"))
    # set, then variant, then grid: later overrides win
    assert dy5.overrides == ("train.steps=10", "online.delta_y=5", "train.lr=0.0003",
                             "online.exploration=true")
    assert [t.seed for t in trials[:3]] == [0, 1, 2]  # seeds innermost
    assert trials[-1].task == "pointmaze-medium-goal"
    assert [t.id for t in expand(s)] == [t.id for t in trials]  # stable


def test_yaml_file_with_templates(tmp_path):
    path = tmp_path / "sw.yaml"
    path.write_text("command: train\ntasks: [pointmaze-umaze-goal]\nseeds: [3]\n"
                    "dataset: data/{task}-s{seed}.hdf5\ngrid:\n  train.lr: [1e-3]\n"
                    "set: [train.steps=5]\neval: {episodes: 4, seeds: [0, 1]}\n")
    s = load_spec(path)
    assert s.name == "sw" and s.eval["episodes"] == 4 and s.eval["n_envs"] == 16
    (t,) = expand(s)
    assert t.id == "pointmaze-umaze-goal__train.lr=1e-3__s3"
    assert t.dataset == "data/pointmaze-umaze-goal-s3.hdf5"
    assert t.to_dict() == type(t).from_dict(t.to_dict()).to_dict()


@pytest.mark.parametrize("kw, message", [
    ({"colour": 1}, "unknown key"),
    ({"tasks": ["pointmaze-nowhere"]}, "unknown task"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "repeats a seed"),
    ({"command": "fly"}, "command"),
    ({"grid": {"lr": [1]}}, "SECTION.FIELD"),
    ({"grid": {"train.lr": 1e-3}}, "non-empty list"),
    ({"grid": {"train.learning_rate": [1e-3]}}, "no field 'learning_rate'"),
    ({"grid": {"train.steps": ["many"]}}, "cannot parse 'many'"),
    ({"set": ["inference.mode=exploitt"]}, "unknown inference mode 'exploitt'"),
    ({"set": ["online.collector=spark"]}, "expected one of"),
    ({"eval": {"episodes": 0}}, "eval.episodes"),
    ({"eval": {"episode": 3}}, "eval:"),
    ({"command": "finetune"}, "needs checkpoint_from"),
    ({"checkpoint_from": "x.pt"}, "only for command: finetune"),
    ({"dataset": "data/{nope}.hdf5"}, "{task} and {seed}"),
    ({"name": "a/b"}, "names a folder"),
    ({"grid": {"train.lr": ["1e-3", "1e-3"]}}, "repeats a value"),
])
def test_bad_specs_fail_with_the_reason(kw, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("{", r"\{")) as info:
        spec(**kw)
    assert str(info.value).startswith("<test>: ")


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


def test_finetune_checkpoint_from_a_sweep_or_a_path_template():
    s = spec(command="finetune", checkpoint_from={"sweep": "off", "match": {"train.lr": 1e-3}})
    assert expand(s)[0].checkpoint_from == {"sweep": "off", "match": {"train.lr": "0.001"}}
    s = spec(command="finetune", checkpoint_from="runs/{task}-s{seed}/checkpoint.pt", seeds=[2])
    assert expand(s)[0].checkpoint_from == "runs/pointmaze-umaze-goal-s2/checkpoint.pt"


@pytest.mark.parametrize("name", ["sweep_umaze.yaml", "sweep_umaze_online.yaml"])
def test_example_sweep_files_load(name):
    trials = expand(load_spec(Path(__file__).parents[2] / "examples" / name))
    assert len(trials) in (6, 12)
