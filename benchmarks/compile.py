"""Compiled and fused paths: torch.compile (CPU inductor) against eager, for the training update
and the one-step decode, and the one-step decode's folded projections against unfolded ones.

    python benchmarks/compile.py [--task pointmaze-umaze-goal] [--updates 50] [--rounds 5]
                                 [--threads 1] [--steps 30000]

Training: two trainers of the task's preset on one generated dataset, one eager, one with the
transformer and the prior compiled (``nn.Module.compile``); the compiled one's first updates
include the compilation, timed apart; then both are timed in alternating rounds (medians). Their
losses must agree to rounding. Decode (one-step-context presets only): 16 episodes' decoding
step, eager (``GACModel.act``, whose layers use ``decoding.fold_alone``: the self-attention's
value and output projections as one linear) against the same layers compiled as one function,
and against the two projections applied one after the other (the unfolded form), alternating.
Both sides of each ratio come from this one run. Where compilation fails (no C++ compiler, an
unsupported platform), the failure is printed instead of a figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from gac.config import apply_overrides, preset
from gac.data.generators import generate
from gac.data.segments import resegment
from gac.model import decoding
from gac.tasks import get_task
from gac.train.offline import Trainer


def alternate(fns: dict[str, Callable[[], object]], rounds: int
              ) -> tuple[dict[str, float], dict[str, float]]:
    """Timed in alternating rounds: each function's median seconds per call, and the median
    over rounds of the first function's time over each one's in the same round (a ratio of
    neighbouring measurements, robust to a load that changes between rounds)."""
    spent: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            spent[k].append(time.perf_counter() - t0)
    first = spent[next(iter(fns))]
    ratios = {k: statistics.median(a / b for a, b in zip(first, v, strict=True))
              for k, v in spent.items()}
    return {k: statistics.median(v) for k, v in spent.items()}, ratios


def training(task_name: str, args: argparse.Namespace) -> None:
    task = get_task(task_name)
    store, _ = generate(task, args.steps, seed=0, progress=False, reference_episodes=0)
    trainers = {}
    for name in ("eager", "compiled"):
        cfg = apply_overrides(preset(task_name), [f"train.threads={args.threads}"])
        tr = Trainer(cfg, resegment(store, cfg.data.segments, task.horizon), None,
                     return_scale=cfg.train.return_scale or task.return_scale)
        t0 = time.perf_counter()
        if name == "compiled":
            tr.model.transformer.compile()
            tr.model.prior_net.compile()
        try:
            for _ in range(3):
                tr.update()
        except Exception as exc:  # noqa: BLE001 - any compiler failure ends the comparison
            print(f"training: compilation failed ({type(exc).__name__}: {exc})")
            return
        print(f"training, {name}: first 3 updates {time.perf_counter() - t0:.1f} s")
        trainers[name] = tr
    per = max(1, args.updates // args.rounds)
    losses: dict[str, float] = {}

    def run(name: str) -> Callable[[], None]:
        def f() -> None:
            for _ in range(per):
                losses[name] = trainers[name].update()["loss"]
        return f

    med, ratio = alternate({k: run(k) for k in trainers}, args.rounds)
    e, c = med["eager"] / per, med["compiled"] / per
    print(f"training s/update: eager {e:.4f}, compiled {c:.4f}; eager/compiled "
          f"{ratio['compiled']:.2f}x (median over rounds); "
          f"last loss {losses['eager']:.5f} vs {losses['compiled']:.5f}")


def decode(task_name: str, args: argparse.Namespace, n_envs: int = 16, steps: int = 300) -> None:
    task, cfg = get_task(task_name), preset(task_name)
    if cfg.model.context_steps != 1:
        print("decode: the preset's context is longer than one step; not measured")
        return
    env = task.make_env()
    cfg.model.obs_dim, cfg.model.act_dim = env.obs_dim, env.act_dim
    from gac.model import GACModel

    model = GACModel(cfg.model).eval()  # speed does not depend on the weights
    tf = model.transformer
    z = model.prior(torch.randn(n_envs, *model.latent_shape)).detach()
    obs = torch.randn(n_envs, env.obs_dim)

    @torch.compile(dynamic=False)
    def layers(x: torch.Tensor, cache: decoding.DecodeCache) -> torch.Tensor:
        for alone in cache.alone:
            x = decoding._block_alone(x, alone, None)
        return decoding._head_alone(x, cache.head, cache.head_eps)

    def eager() -> torch.Tensor:
        with torch.inference_mode():
            cache = model.start_episode(z)
            for t in range(steps):
                a = model.act(cache, obs, t)
                model.observe_action(cache, a)
        return a

    def unfolded() -> torch.Tensor:
        d = tf.d_model
        with torch.inference_mode():
            cache = model.start_episode(z)
            for _ in range(steps):
                x = tf.embed_state(model.normalise_obs(obs))[:, None]
                for block, cross in zip(tf.blocks, cache.cross, strict=True):
                    qkv = block.attn.qkv
                    v = F.linear(decoding._layer_norm(block.ln1, x), qkv.weight[2 * d:],
                                 qkv.bias[2 * d:])
                    x = decoding._block_rest(block, x + decoding._linear(block.attn.proj, v),
                                             cross)
                a = tf.head(x[:, -1])
        return a

    def compiled() -> torch.Tensor:
        with torch.inference_mode():
            cache = model.start_episode(z)
            for _ in range(steps):
                a = layers(tf.embed_state(model.normalise_obs(obs)), cache)
        return a

    t0 = time.perf_counter()
    try:
        gap = float((compiled() - eager()).abs().max())
    except Exception as exc:  # noqa: BLE001
        print(f"decode: compilation failed ({type(exc).__name__}: {exc})")
        return
    print(f"decode, compiled: first episode {time.perf_counter() - t0:.1f} s; max |action gap| "
          f"{gap:.1e}")
    print(f"decode, unfolded: max |action gap| {float((unfolded() - eager()).abs().max()):.1e}")
    med, ratio = alternate({"eager": eager, "compiled": compiled, "unfolded": unfolded},
                           2 * args.rounds)
    e, c, u = (med[k] / steps * 1e3 for k in ("eager", "compiled", "unfolded"))
    print(f"decode ms/step ({n_envs} envs): eager (folded) {e:.3f}, compiled {c:.3f}, unfolded "
          f"{u:.3f}; medians over rounds: eager/compiled {ratio['compiled']:.2f}x, "
          f"unfolded/folded {1 / ratio['unfolded']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="pointmaze-umaze-goal")
    parser.add_argument("--updates", type=int, default=50, help="timed updates per side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30_000, help="dataset size (env steps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    training(args.task, args)
    decode(args.task, args)


if __name__ == "__main__":
    main()
