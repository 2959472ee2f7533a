"""The policy store: each body's committed behaviour policies (``policies/{body}/`` beside this
module: a ``manifest.json`` and ``actors.npz`` with every snapshot up to the medium one and the
expert), written by ``gac behaviour export`` (``gac.data.behaviour.ppo.export_policies``). They
are package data: an installed gac makes locomotion datasets without the source tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gac.data.behaviour.actor import PlainActor


def policies_dir() -> Path:
    """``$GAC_POLICIES``, else the policies shipped with the package (``policies/`` beside this
    module)."""
    if os.environ.get("GAC_POLICIES"):
        return Path(os.environ["GAC_POLICIES"]).expanduser()
    return Path(__file__).resolve().parent / "policies"


@dataclass
class BehaviourPolicies:
    """A body's committed policies: manifest plus actors (snapshots up to medium, expert)."""

    body: str
    manifest: dict[str, Any]
    actors: dict[int, PlainActor] = field(default_factory=dict)
    sha: str = ""  # fingerprint of the files: datasets cached from other policies are stale

    @property
    def medium_step(self) -> int:
        return int(self.manifest["medium"]["step"])

    @property
    def expert_step(self) -> int:
        return int(self.manifest["expert"]["step"])

    def actor(self, step: int) -> PlainActor:
        return self.actors[step]

    @property
    def references(self) -> tuple[float, float]:
        ref = self.manifest["references"]
        return float(ref["random"]), float(ref["expert"])


def load_policies(body: str, root: str | Path | None = None) -> BehaviourPolicies:
    folder = Path(root or policies_dir()) / body
    if not (folder / "manifest.json").exists():
        raise FileNotFoundError(
            f"no behaviour policies for {body!r} in {folder}: train and export them "
            f"(gac behaviour train {body}; gac behaviour export {body}), or set "
            f"GAC_POLICIES to a folder holding {body}/manifest.json")
    manifest = json.loads((folder / "manifest.json").read_text())
    with np.load(folder / "actors.npz") as z:
        steps = sorted({int(k.split("_")[0][1:]) for k in z.files})
        actors = {s: PlainActor.from_arrays(z, f"s{s:09d}_") for s in steps}
    return BehaviourPolicies(body, manifest, actors, policies_fingerprint(body, root))


def policies_fingerprint(body: str, root: str | Path | None = None) -> str:
    """A short hash of a body's committed policy files ("" when there are none)."""
    folder = Path(root or policies_dir()) / body
    if not (folder / "manifest.json").exists():
        return ""
    h = hashlib.sha256()
    for name in ("manifest.json", "actors.npz"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


def replay_size(body: str) -> int | None:
    """Steps of the medium-replay data of a body's committed policies (None: not trained)."""
    path = policies_dir() / body / "manifest.json"
    if not path.exists():
        return None
    return int(json.loads(path.read_text())["replay"]["steps"])
