"""Choosing plans: the modes registry; exploitation by gradient ascent, guided Langevin, random
plans, elite plans."""

import pytest
import torch

from gac.config import InferenceConfig, ModelConfig
from gac.inference import MODES, PlanBank, ascend, exploit_objective, plan, sample_conditioned
from gac.model import GACModel
from gac.model.return_head import end_head

B, STARTS = 4, 8


@pytest.fixture
def model() -> GACModel:
    torch.manual_seed(0)
    cfg = ModelConfig(obs_dim=5, act_dim=3, d_model=32, n_heads=2, n_layers=2, context_steps=4,
                      prior="mlp", mlp_hidden=64, return_hidden=32, return_condition_s0=True)
    model = GACModel(cfg)
    model.set_normalisation(torch.zeros(5), torch.ones(5), 100.0)
    with torch.no_grad():  # a freshly initialised return head is nearly flat; steepen it
        model.return_head.net[-1].weight.mul_(30)
    return model


@pytest.fixture
def s0() -> torch.Tensor:
    return torch.randn(B, 5, generator=torch.Generator().manual_seed(3))


def predicted(model, z0, s0):
    with torch.no_grad():
        return model.predict_return(model.prior(z0), s0)


def objective(model, z0, s0, weight):
    with torch.no_grad():
        return exploit_objective(model, z0, s0, weight)


@pytest.mark.parametrize("weight", [1.0, 0.1])
def test_exploit_beats_its_prior_starts(model, s0, weight):
    cfg = InferenceConfig(mode="exploit", n_starts=STARTS, ascent_steps=20, prior_weight=weight,
                          constraint="penalty")
    z = plan(model, s0, cfg, torch.Generator().manual_seed(0))
    assert z.shape == (B, 4, 32)
    starts = model.sample_z0(B * STARTS, torch.Generator().manual_seed(0))
    s0_rep = s0.repeat_interleave(STARTS, dim=0)
    at_starts = objective(model, starts, s0_rep, weight).view(B, STARTS)
    assert (objective(model, z, s0, weight) > at_starts.max(dim=1).values).all()

    # Best of starts >= every single optimised start.
    each, each_obj = ascend(model, starts, s0_rep, 20, cfg.ascent_lr, weight)
    assert torch.allclose(objective(model, each, s0_rep, weight), each_obj, atol=1e-5)
    best = objective(model, z, s0, weight)
    assert (best[:, None] >= each_obj.view(B, STARTS) - 1e-5).all()


def test_exploit_with_a_weak_prior_raises_predicted_return(model, s0):
    cfg = InferenceConfig(mode="exploit", n_starts=STARTS, ascent_steps=20, prior_weight=0.1,
                          constraint="penalty")
    z = plan(model, s0, cfg, torch.Generator().manual_seed(0))
    samples = model.sample_z0(B * STARTS, torch.Generator().manual_seed(1))
    prior_r = predicted(model, samples, s0.repeat_interleave(STARTS, 0)).view(B, STARTS)
    assert (predicted(model, z, s0) > prior_r.max(dim=1).values).all()


def test_exploit_uses_extra_starts(model, s0):
    cfg = InferenceConfig(mode="exploit", n_starts=1, ascent_steps=0, prior_weight=1.0,
                          constraint="penalty")
    good = torch.zeros(1, 4, 32)  # the prior's mode beats any sample under a strong prior
    z = plan(model, s0, cfg, torch.Generator().manual_seed(0), extra_starts=good)
    assert torch.equal(z, good.expand(B, 4, 32))


def test_sphere_exploit_raises_predicted_return_and_stays_typical(model, s0):
    cfg = InferenceConfig(mode="exploit", n_starts=STARTS, ascent_steps=20, constraint="sphere")
    z = plan(model, s0, cfg, torch.Generator().manual_seed(0))
    radius = z[0].numel() ** 0.5
    torch.testing.assert_close(z.flatten(1).norm(dim=1), torch.full((B,), radius))
    starts = model.sample_z0(B * STARTS, torch.Generator().manual_seed(0))
    on_sphere = starts * radius / starts.flatten(1).norm(dim=1)[:, None, None]
    prior_r = predicted(model, on_sphere, s0.repeat_interleave(STARTS, 0)).view(B, STARTS)
    assert (predicted(model, z, s0) > prior_r.max(dim=1).values).all()


def test_guided_moves_predicted_return_toward_target(model, s0):
    states = s0.repeat(8, 1)
    prior_r = predicted(model, model.sample_z0(len(states), torch.Generator().manual_seed(1)),
                        states)
    target = float(model.unscale_return(prior_r.mean() + 3 * prior_r.std()))
    cfg = InferenceConfig(mode="guided", langevin_steps=30, guidance=5.0)
    z = plan(model, states, cfg, torch.Generator().manual_seed(0), target_return=target)
    y = float(model.scale_return(target))
    assert (predicted(model, z, states) - y).abs().mean() < 0.5 * (prior_r - y).abs().mean()

    # Exploration: p(z0 | y+) with guidance 1 still moves toward y+.
    explore = sample_conditioned(model, states, target, 30, 0.3, torch.Generator().manual_seed(0))
    assert (predicted(model, explore, states) - y).abs().mean() < (prior_r - y).abs().mean()


def test_guided_needs_a_target(model, s0):
    with pytest.raises(ValueError, match="target return"):
        plan(model, s0, InferenceConfig(mode="guided"))
    cfg = InferenceConfig(mode="guided", langevin_steps=2, target_return=50.0)
    assert plan(model, s0, cfg).shape == (B, 4, 32)


def test_random_mode_and_unknown_mode(model, s0):
    z = plan(model, s0, InferenceConfig(mode="random"), torch.Generator().manual_seed(0))
    assert torch.equal(z, torch.randn(B, 4, 32, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        plan(model, s0, InferenceConfig(mode="nonsense"))


@pytest.mark.parametrize("mode", ["exploit", "guided", "random"])
def test_plans_are_deterministic_under_a_generator(model, s0, mode):
    cfg = InferenceConfig(mode=mode, n_starts=4, ascent_steps=5, langevin_steps=5, target_return=100.0)
    a, b = (plan(model, s0, cfg, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a, b)


def test_planning_restores_training_mode_and_leaves_no_gradients(model, s0):
    model.train()
    for mode in ("exploit", "guided"):
        plan(model, s0, InferenceConfig(mode=mode, n_starts=2, ascent_steps=3, langevin_steps=3,
                                        target_return=1.0))
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_elite_plans_come_from_the_best_training_episodes(model, s0):
    bank = torch.randn(10, 4, 32, generator=torch.Generator().manual_seed(5))
    returns = torch.arange(10.0).flip(0).numpy()  # episodes 0, 1, 2 are the best
    cfg = InferenceConfig(mode="elite", elite_episodes=3)
    with pytest.raises(ValueError, match="training episodes' plans"):
        plan(model, s0, cfg, torch.Generator().manual_seed(0))
    plans = PlanBank(bank, returns)
    z = plan(model, torch.randn(64, 5), cfg, torch.Generator().manual_seed(0), bank=plans)
    picked = {int((bank - zi).flatten(1).abs().sum(1).argmin()) for zi in z}
    assert picked == {0, 1, 2}
    with pytest.raises(ValueError, match="plan bank"):
        PlanBank(bank[:5], returns)
    with pytest.raises(ValueError, match="plan bank: plans of shape"):
        plan(model, s0, cfg, bank=PlanBank(bank[:, :2], returns))
    with pytest.raises(ValueError, match="at least 1"):
        plan(model, s0, InferenceConfig(mode="elite", elite_episodes=0), bank=plans)


def test_refine_moves_the_elite_draw_uphill_inside_its_trust_region(model, s0):
    bank = torch.randn(10, 4, 32, generator=torch.Generator().manual_seed(5))
    returns = torch.arange(10.0).flip(0).numpy()  # episodes 0, 1, 2 are the best
    with pytest.raises(ValueError, match="training episodes' plans"):
        plan(model, s0, InferenceConfig(mode="refine"))
    plans = PlanBank(bank, returns)
    top = bank[:3]
    drawn = plan(model, s0, InferenceConfig(mode="elite", elite_episodes=3),
                 torch.Generator().manual_seed(1), bank=plans)
    cfg = InferenceConfig(mode="refine", elite_episodes=3, ascent_steps=20, prior_weight=1.0)
    moved = plan(model, s0, cfg, torch.Generator().manual_seed(1), bank=plans)
    assert (predicted(model, moved, s0) > predicted(model, drawn, s0)).all()
    nearest = torch.cdist(moved.flatten(1), top.flatten(1)).argmin(dim=1)
    assert torch.equal(top[nearest], drawn)  # still in its own plan's trust region
    # The unanchored ascent from the same plans is pulled away toward the prior's mode.
    free = plan(model, s0, InferenceConfig(mode="exploit", n_starts=1, ascent_steps=20,
                                           prior_weight=1.0),
                torch.Generator().manual_seed(1), extra_starts=top)
    assert ((moved - drawn).flatten(1).norm(dim=1)
            < torch.cdist(free.flatten(1), top.flatten(1)).min(dim=1).values).all()
    still = plan(model, s0, InferenceConfig(mode="refine", elite_episodes=3, ascent_steps=0),
                 torch.Generator().manual_seed(1), bank=plans)
    assert torch.equal(still, drawn)


def test_unknown_mode_is_named_with_the_known_ones(model, s0):
    with pytest.raises(ValueError, match="unknown inference mode 'foo'; expected exploit, refine"):
        plan(model, s0, InferenceConfig(mode="foo"))
    with pytest.raises(ValueError, match="'prior' \\(renamed 'random'\\)"):
        plan(model, s0, InferenceConfig(mode="prior"))


def test_every_registered_mode_plans_one_plan_per_state(model, s0):
    bank = PlanBank(torch.randn(10, 4, 32), torch.arange(10.0).numpy(), torch.randn(10, 5),
                    torch.randn(10, 5), torch.arange(1, 11).numpy())
    model.end_head = end_head(model.cfg)  # lookahead's; the other modes do not read it
    for name, mode in MODES.items():
        cfg = InferenceConfig(mode=name, n_starts=2, ascent_steps=2, langevin_steps=2,
                              target_return=1.0)
        assert plan(model, s0, cfg, torch.Generator().manual_seed(0), bank=bank).shape == (B, 4, 32)
        assert mode.summary and "\n" not in mode.summary


def test_select_ranks_the_bank_per_state(model, s0):
    bank = torch.randn(40, 4, 32, generator=torch.Generator().manual_seed(5))
    plans = PlanBank(bank, torch.zeros(40).numpy())  # stored returns play no part
    with pytest.raises(ValueError, match="training episodes' plans"):
        plan(model, s0, InferenceConfig(mode="select"))
    states = 10 * torch.randn(16, 5, generator=torch.Generator().manual_seed(9))
    rated = torch.stack([predicted(model, bank, s.expand(40, 5)) for s in states])  # (16, 40)
    best = plan(model, states, InferenceConfig(mode="select", elite_episodes=1), bank=plans)
    torch.testing.assert_close(best, bank[rated.argmax(1)])  # argmax per state
    assert len({int(i) for i in rated.argmax(1)}) > 1  # and the states disagree
    top3 = rated.topk(3, dim=1).indices
    drawn = plan(model, states, InferenceConfig(mode="select", elite_episodes=3),
                 torch.Generator().manual_seed(0), bank=plans)
    for i, z in enumerate(drawn):
        j = int((bank - z).flatten(1).abs().sum(1).argmin())
        assert j in top3[i].tolist()


def test_local_takes_the_best_return_among_the_nearest_starts(model):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 4, 32, generator=g)
    # Starts on a line in the first two entries; the other entries are far off and must not
    # count with local_dims=2.
    starts = torch.zeros(6, 5)
    starts[:, 0] = torch.tensor([0.0, 0.1, 0.2, 5.0, 5.1, 9.0])
    starts[:, 2:] = 100 * torch.randn(6, 3, generator=g)
    returns = torch.tensor([1.0, 3.0, 2.0, 0.0, 0.0, 50.0]).numpy()
    bank = PlanBank(z, returns, starts)
    states = torch.tensor([[0.05, 0, 0, 0, 0], [5.05, 0, 0, 0, 0], [8.0, 0, 0, 0, 0.0]])
    cfg = InferenceConfig(mode="local", local_share=0.5, local_dims=2)
    out = plan(model, states, cfg, bank=bank)
    # 3 neighbours of 6. State 0: the nearest are plans 0-2, best return plan 1; state 1:
    # plans 3, 4 and 5 (return 50); state 2: 5, 4, 3.
    torch.testing.assert_close(out, z[[1, 5, 5]])
    # Equal returns (plans 3 and 4, both 0): the nearer one.
    states[1, 0] = 5.08
    out = plan(model, states, InferenceConfig(mode="local", local_share=0.34, local_dims=2), bank=bank)
    torch.testing.assert_close(out, z[[1, 4, 5]])
    # On every entry (normalised), the far-off entries decide: a different choice.
    out_all = plan(model, states, InferenceConfig(mode="local", local_share=0.34), bank=bank)
    assert not torch.equal(out_all, out)


def test_local_radius_ranks_the_starts_within_it_and_falls_back_to_the_share(model):
    z = torch.randn(6, 4, 32, generator=torch.Generator().manual_seed(4))
    starts = torch.zeros(6, 5)
    starts[:, 0] = torch.tensor([0.0, 0.3, 0.9, 5.0, 5.1, 9.0])
    returns = torch.tensor([1.0, 0.0, 7.0, 0.0, 0.0, 50.0]).numpy()
    bank = PlanBank(z, returns, starts)
    # State 0: plans 0 and 1 lie within 0.5, plan 2 (return 7) does not. State 1: plans 3 and
    # 4 tie at 0, the nearer (4) wins. State 2 (at 7): none within 0.5, so the share's nearest
    # half (5, 4, 3) decides: plan 5.
    states = torch.tensor([[0.1, 0, 0, 0, 0], [5.08, 0, 0, 0, 0], [7.0, 0, 0, 0, 0.0]])
    cfg = InferenceConfig(mode="local", local_share=0.5, local_dims=2, local_radius=0.5)
    torch.testing.assert_close(plan(model, states, cfg, bank=bank), z[[0, 4, 5]])
    # Without the radius, state 0's nearest half (0, 1, 2) holds plan 2's return of 7.
    cfg.local_radius = 0.0
    torch.testing.assert_close(plan(model, states, cfg, bank=bank)[0], z[2])


def test_local_needs_first_observations(model, s0):
    z = torch.randn(5, 4, 32)
    with pytest.raises(ValueError, match="first observations"):
        plan(model, s0, InferenceConfig(mode="local"), bank=PlanBank(z, torch.zeros(5).numpy()))
    with pytest.raises(ValueError, match="local_dims=9"):
        plan(model, s0, InferenceConfig(mode="local", local_dims=9),
             bank=PlanBank(z, torch.zeros(5).numpy(), torch.zeros(5, 5)))
    with pytest.raises(ValueError, match="first observations of shape"):
        PlanBank(z, torch.zeros(5).numpy(), torch.zeros(4, 5))


def _chain_bank(gamma_len: int = 10):
    """Segments A -> B -> C -> A on a loop (ends within 0.5 of the next start) and D, a dead
    end; only B earns a return. Observations: 5 entries, the position in the first two."""
    z = torch.randn(4, 4, 32, generator=torch.Generator().manual_seed(5))
    starts = torch.zeros(4, 5)
    ends = torch.zeros(4, 5)
    starts[:, :2] = torch.tensor([[0.0, 0.0], [1.0, 0.1], [2.0, 0.0], [0.0, 0.2]])
    ends[:, :2] = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.05], [5.0, 5.0]])
    returns = torch.tensor([0.0, 5.0, 0.0, 1.0]).numpy()
    lengths = torch.full((4,), gamma_len).numpy()
    return PlanBank(z, returns, starts, ends, lengths)


def test_stitched_values_are_the_best_discounted_chain_return(model):
    from gac.inference.bank import stitched_values

    bank = _chain_bank()
    v = stitched_values(model, bank, gamma=0.9, radius=0.5, dims=2)
    g = 0.9**10
    va = 5 * g / (1 - g**3)  # A -> B -> C -> A ..., the loop's fixed point (C: above D's 1)
    expected = torch.tensor([va, va / g, g * va, 1.0])
    torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-5)
    # A radius too small for any join: each segment's own return.
    alone = stitched_values(model, bank, gamma=0.9, radius=0.01, dims=2)
    torch.testing.assert_close(alone, torch.tensor([0.0, 5.0, 0.0, 1.0]))


def test_stitched_values_on_every_entry_follow_the_models_normalisation(model):
    from gac.inference.bank import stitched_values

    bank = _chain_bank()
    near = stitched_values(model, bank, gamma=0.9, radius=0.5, dims=0)
    model.set_normalisation(torch.zeros(5), torch.full((5,), 10.0), 100.0)  # 10x closer
    wide = stitched_values(model, bank, gamma=0.9, radius=0.5, dims=0)
    assert not torch.equal(near, wide)  # recomputed for the new statistics, not the memo
    model.set_normalisation(torch.zeros(5), torch.ones(5), 100.0)
    torch.testing.assert_close(stitched_values(model, bank, gamma=0.9, radius=0.5, dims=0), near)


def test_stitch_prefers_the_segment_that_leads_to_return(model):
    bank = _chain_bank()
    state = torch.tensor([[0.1, 0.0, 0, 0, 0]])  # nearest starts: A (0.1), then D (0.22)
    near = dict(local_share=0.5, local_dims=2)
    z_local = plan(model, state, InferenceConfig(mode="local", **near), bank=bank)
    z_stitch = plan(model, state, InferenceConfig(mode="stitch", stitch_gamma=0.9, **near),
                    bank=bank)
    torch.testing.assert_close(z_local, bank.z0[[3]])  # D: its own return 1 beats A's 0
    torch.testing.assert_close(z_stitch, bank.z0[[0]])  # A leads to B's 5: value 1.82


def test_stitch_needs_last_observations_and_lengths(model, s0):
    z = torch.randn(5, 4, 32)
    bank = PlanBank(z, torch.zeros(5).numpy(), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="last observations and lengths"):
        plan(model, s0, InferenceConfig(mode="stitch"), bank=bank)
    with pytest.raises(ValueError, match="lengths for 5 plans"):
        PlanBank(z, torch.zeros(5).numpy(), torch.zeros(5, 5), torch.zeros(5, 5), [3, 4])


class _EndsByPlan(torch.nn.Module):
    """An end head that says where each of a few known plans ends, whatever the state: the
    lookahead test sets the model's predictions instead of training them."""

    def __init__(self, z: torch.Tensor, ends: torch.Tensor):
        super().__init__()
        self.z, self.ends = z.flatten(1), ends

    def forward(self, z: torch.Tensor, s0_normalised: torch.Tensor) -> torch.Tensor:
        return self.ends[torch.cdist(z.flatten(1), self.z).argmin(dim=1)]


def test_lookahead_values_a_plan_by_where_the_model_says_it_ends_from_here(model):
    bank = _chain_bank()
    state = torch.tensor([[0.1, 0.0, 0, 0, 0]])  # nearest starts: A (0.1), then D (0.22)
    cfg = InferenceConfig(mode="lookahead", stitch_gamma=0.9, local_share=0.5, local_dims=2)
    with pytest.raises(ValueError, match="need an end head"):
        plan(model, state, cfg, bank=bank)
    with torch.no_grad():  # a flat return head: only the continuation ranks the plans
        model.return_head.net[-1].weight.zero_()
        keys = model.prior(bank.z0)
    # From here, A's plan is predicted to end nowhere near a segment, D's at B's start: D is
    # chosen, where stitch (the data end points) chooses A.
    ends = torch.zeros(4, 5)
    ends[:, :2] = torch.tensor([[5.0, -5.0], [2.0, 0.0], [0.0, 0.05], [1.0, 0.1]])
    model.end_head = _EndsByPlan(keys, ends)
    torch.testing.assert_close(plan(model, state, cfg, bank=bank), bank.z0[[3]])
    cfg.mode = "stitch"
    torch.testing.assert_close(plan(model, state, cfg, bank=bank), bank.z0[[0]])
    # Predicted ends swapped back to the data's: lookahead agrees with stitch.
    model.end_head = _EndsByPlan(keys, bank.ends)
    cfg.mode = "lookahead"
    torch.testing.assert_close(plan(model, state, cfg, bank=bank), bank.z0[[0]])


def test_lookahead_can_rank_by_the_segments_data_returns(model):
    bank = _chain_bank()
    state = torch.tensor([[0.1, 0.0, 0, 0, 0]])  # candidates A (nearest) and D
    with torch.no_grad():
        model.return_head.net[-1].weight.zero_()  # r(z, s) equal for every plan
        keys = model.prior(bank.z0)
    far = torch.zeros(4, 5)
    far[:, :2] = 9.0  # every plan is predicted to end where no segment starts
    model.end_head = _EndsByPlan(keys, far)
    cfg = InferenceConfig(mode="lookahead", local_share=0.5, local_dims=2)
    torch.testing.assert_close(plan(model, state, cfg, bank=bank), bank.z0[[0]])  # a tie: A
    cfg.lookahead_return = "data"  # D's own return 1 beats A's 0
    torch.testing.assert_close(plan(model, state, cfg, bank=bank), bank.z0[[3]])


def test_arrive_plays_a_segment_that_ends_where_the_best_segments_start(model):
    bank = _chain_bank()  # B (start (1, 0.1)) earns the return; A ends at (1, 0), near it
    cfg = InferenceConfig(mode="arrive", elite_episodes=1, local_dims=2, stitch_radius=0.5)
    far = torch.tensor([[2.1, 0.0, 0, 0, 0], [0.0, 0.3, 0, 0, 0]])  # C's start, then D's
    # Only A arrives at B's start, so A is played from everywhere: local would take the
    # nearest segments' own plans (C, D).
    torch.testing.assert_close(plan(model, far, cfg, bank=bank), bank.z0[[0, 0]])
    # The two best (B, then D) mark two destinations: B's start (reached by A) and D's (0, 0.2),
    # where C ends (0, 0.05): from near C's start C is nearest among the arrivals, A elsewhere.
    cfg.elite_episodes = 2
    torch.testing.assert_close(plan(model, far, cfg, bank=bank), bank.z0[[2, 0]])
    # No segment ends within the radius: those ending nearest a destination arrive.
    cfg.elite_episodes, cfg.stitch_radius = 1, 1e-3
    torch.testing.assert_close(plan(model, far, cfg, bank=bank), bank.z0[[0, 0]])


def test_arrive_needs_first_and_last_observations(model, s0):
    bank = PlanBank(torch.randn(5, 4, 32), torch.zeros(5).numpy(), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="first and last observations"):
        plan(model, s0, InferenceConfig(mode="arrive"), bank=bank)
