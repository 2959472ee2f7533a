import matplotlib.image as mpimg

from gac.evaluation.plots import mean_over_seeds, method_curves, method_scores


def test_method_curves_writes_a_png_for_ragged_methods(tmp_path):
    curves = {
        "auto": [[(0, 40.0), (100, 55.0), (200, 70.0)], [(0, 60.0), (100, 62.0), (200, 80.0)]],
        "peer": [[(0, 10.0), (200, 50.0)]],  # before/after only
        "ragged": [[(0, 1.0), (100, 2.0)], [(0, 1.0)]],  # unequal: the mean uses the seeds at each x
    }
    path = method_curves(curves, tmp_path / "sub" / "curves.png", "title")
    assert path == tmp_path / "sub" / "curves.png"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_mean_over_seeds_averages_the_seeds_present_at_each_x():
    xs, mean, std = mean_over_seeds([[(0, 1.0), (100, 3.0)], [(0, 3.0)]])
    assert xs == [0, 100]
    assert mean.tolist() == [2.0, 3.0] and std.tolist() == [1.0, 0.0]


def test_mean_over_seeds_aligns_equal_length_curves_point_by_point():
    # Episodes that end early: the seeds' stages end at slightly different step counts.
    xs, mean, std = mean_over_seeds([[(0, 1.0), (4011, 3.0)], [(0, 3.0), (4013, 5.0)]])
    assert xs == [0, 4012]
    assert mean.tolist() == [2.0, 4.0] and std.tolist() == [1.0, 1.0]


def test_method_scores_draws_one_panel_per_scale_with_published_marks(tmp_path):
    panels = {"ours": {"gac": [10.0, 12.0, 8.0], "bc": [-3.0]},
              "d4rl": {"gac": [24.0, 26.0, 20.0], "bc": [0.2]}}
    path = method_scores(panels, tmp_path / "scores.png", "maze", {"d4rl": {"LPT-EI": 26.7}})
    img = mpimg.imread(path)
    assert img.shape[1] > 1.6 * img.shape[0]  # two panels side by side
