import matplotlib.image as mpimg

from gac.evaluation.plots import method_curves


def test_method_curves_writes_a_png_for_ragged_methods(tmp_path):
    curves = {
        "auto": [[(0, 40.0), (100, 55.0), (200, 70.0)], [(0, 60.0), (100, 62.0), (200, 80.0)]],
        "peer": [[(0, 10.0), (200, 50.0)]],  # before/after only
        "ragged": [[(0, 1.0), (100, 2.0)], [(0, 1.0)]],  # unequal: seeds drawn, no mean line
    }
    path = method_curves(curves, tmp_path / "sub" / "curves.png", "title")
    assert path == tmp_path / "sub" / "curves.png"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
