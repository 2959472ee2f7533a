"""Ray's start-up: a timeout and a clear error, with or without Ray installed (a stand-in
module plays Ray here)."""

from __future__ import annotations

import signal
import socket
import sys
import time
import types

import pytest

from gac.collectors import RayStartError, init_ray


def fake_ray(monkeypatch, init):
    ray = types.SimpleNamespace(init=init, is_initialized=lambda: False)
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


def test_a_start_that_hangs_fails_after_the_timeout(monkeypatch):
    fake_ray(monkeypatch, lambda **_: time.sleep(30))
    with pytest.raises(RayStartError, match=r"a local Ray instance did not start within 0\.3 s; "
                                            r"raise GAC_RAY_TIMEOUT"):
        init_ray(timeout=0.3)


def test_the_timeout_comes_from_the_environment(monkeypatch):
    fake_ray(monkeypatch, lambda **_: time.sleep(30))
    monkeypatch.setenv("GAC_RAY_TIMEOUT", "0.2")
    with pytest.raises(RayStartError, match=r"within 0\.2 s"):
        init_ray()


def test_a_failed_start_says_why(monkeypatch):
    def init(**_):
        raise ConnectionError("Could not find any running Ray instance")

    fake_ray(monkeypatch, init)
    with pytest.raises(RayStartError, match="could not start: ConnectionError: Could not find"):
        init_ray(address="auto")


def test_an_address_where_nothing_answers_fails_at_once(monkeypatch):
    called = []
    fake_ray(monkeypatch, lambda **kw: called.append(kw))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RayStartError, match=rf"no Ray cluster answers at 127\.0\.0\.1:{port}"):
        init_ray(address=f"127.0.0.1:{port}", timeout=5)
    assert called == []  # Ray's client (which waits, then ends the process) is never asked
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(RayStartError, match="no Ray cluster answers"):
        init_ray(timeout=5)


def test_a_sweep_on_ray_that_does_not_start_fails_clearly(monkeypatch, tmp_path, tiny_maze_path):
    from gac.sweep.runner import run_sweep
    from gac.sweep.spec import parse_spec
    from gac.sweep.trial import SweepError

    fake_ray(monkeypatch, lambda **_: time.sleep(30))
    monkeypatch.setenv("GAC_RAY_TIMEOUT", "0.2")
    spec = parse_spec({"name": "s", "tasks": ["pointmaze-umaze-goal"], "seeds": [0],
                       "dataset": str(tiny_maze_path), "set": ["train.steps=2"]})
    with pytest.raises(SweepError, match="did not start within 0.2 s"):
        run_sweep(spec, root=tmp_path, backend="ray", log=lambda *_: None)


def test_the_timeout_holds_where_sigint_is_ignored(monkeypatch):
    # as in a process that a non-interactive shell started in the background
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        fake_ray(monkeypatch, lambda **_: time.sleep(30))
        with pytest.raises(RayStartError, match=r"within 0\.3 s"):
            init_ray(timeout=0.3)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # and is ignored again after
    finally:
        signal.signal(signal.SIGINT, previous)
