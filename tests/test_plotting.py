"""Tests for skface.plotting: reconstruction grids and filter images."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from skface.plotting import plot_filters, plot_reconstructions  # noqa: E402

RNG = np.random.RandomState(0)


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _shown_images(fig):
    return [ax.images[0].get_array() for ax in fig.axes if ax.images]


def test_plot_reconstructions_grey_makes_two_rows(tmp_path):
    originals = RNG.rand(4, 6, 5)
    fig = plot_reconstructions(originals, originals * 0.5, n_images=3)
    shown = _shown_images(fig)
    assert len(shown) == 6
    np.testing.assert_allclose(shown[0], originals[0])  # top-left: first original
    np.testing.assert_allclose(shown[3], originals[0] * 0.5)  # below it: its reconstruction
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_plot_reconstructions_wraps_into_row_pairs():
    images = RNG.rand(7, 4, 4)
    fig = plot_reconstructions(images, images, n_images=7, n_cols=3)
    assert len(fig.axes) == 3 * 6  # 3 columns, 3 pairs of rows
    assert len(_shown_images(fig)) == 14


def test_plot_reconstructions_flat_rgb_with_image_shape():
    images = RNG.rand(2, 4 * 3 * 3)
    fig = plot_reconstructions(images, images, image_shape=(4, 3, 3))
    assert _shown_images(fig)[0].shape == (4, 3, 3)


def test_plot_reconstructions_uint8_clipped_to_unit_range():
    images = np.full((1, 3, 3), 255, dtype=np.uint8)
    fig = plot_reconstructions(images, np.full((1, 3, 3), 1.7))
    assert max(float(img.max()) for img in _shown_images(fig)) == 1.0


def test_plot_reconstructions_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        plot_reconstructions(RNG.rand(2, 4, 4), RNG.rand(2, 5, 5))


def test_plot_filters_scales_each_filter_around_grey():
    components = np.stack([np.linspace(-2, 2, 16), np.linspace(0, 1, 16)])
    fig = plot_filters(components, (4, 4))
    first, second = _shown_images(fig)
    assert first.min() == pytest.approx(0) and first.max() == pytest.approx(1)
    assert second.min() == pytest.approx(0.5) and second.max() == pytest.approx(1)


def test_plot_filters_limits_count_and_accepts_tensor():
    torch = pytest.importorskip("torch")
    fig = plot_filters(torch.randn(20, 12), (3, 4), n_filters=10, n_cols=5)
    assert len(_shown_images(fig)) == 10
    assert len(fig.axes) == 10


def test_plot_filters_one_dimensional_raises():
    with pytest.raises(ValueError, match="2-D"):
        plot_filters(np.zeros(16), (4, 4))


def test_import_skface_plotting_does_not_import_matplotlib():
    code = "import sys, skface.plotting; assert 'matplotlib' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_plot_alignment_raw_above_crop_boxes_and_no_face_titled():
    from sklearn.utils import Bunch

    from skface.plotting import plot_alignment

    images = [np.full((40, 30, 3), 200, np.uint8), np.zeros((20, 50), np.float32)]
    result = Bunch(
        images=np.zeros((2, 16, 16, 3), np.uint8), found=np.array([True, False]),
        boxes=np.array([[5.0, 6.0, 25.0, 30.0], [np.nan] * 4]),
        landmarks=np.array([[[10.0, 12.0]] * 5, [[np.nan, np.nan]] * 5]),
    )
    template = np.array([[4.0, 5.0], [12.0, 5.0]])
    fig = plot_alignment(images, result, n_cols=2, template=template)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4  # two raw images above their two crops
    raw, other_raw, crop, _ = shown
    # Each raw image keeps its own size (x over [0, W], y over [H, 0]).
    assert list(raw.images[0].get_extent()) == [0, 30, 40, 0]
    assert list(other_raw.images[0].get_extent()) == [0, 50, 20, 0]
    assert len(raw.patches) == 1 and len(raw.collections) == 1  # box, landmarks
    assert other_raw.get_title() == "no face: centre crop" and not other_raw.patches
    assert len(crop.collections) == 1  # the template's points
