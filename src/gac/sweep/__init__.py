"""Sweeps: grids of `gac train` / `gac finetune` trials over tasks x seeds x overrides, run one
after another in this process or in parallel on Ray, and aggregated across seeds.

``spec`` reads and expands a sweep file, ``runner`` runs its trials (resumable, one directory
each: ``trial``) with an ``executor`` (in-process or Ray), ``report`` aggregates finished
trials. Nothing here imports Ray until a Ray path is
taken: Ray is the optional ``ray`` extra.
"""

from gac.sweep.spec import SpecError, SweepSpec, Trial, expand, load_spec

__all__ = ["SpecError", "SweepSpec", "Trial", "expand", "load_spec"]
