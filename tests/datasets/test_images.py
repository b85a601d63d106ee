import numpy as np
import pytest

from skface.datasets._images import read_images


def write_png(path, pixels):
    from PIL import Image

    Image.fromarray(pixels).save(path)  # lossless: pixels read back exactly


@pytest.fixture
def wide_image(tmp_path):
    """One RGB PNG 20 rows high and 30 columns wide, and its pixels."""
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_png(tmp_path / "wide.png", pixels)
    return tmp_path / "wide.png", pixels


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_read_images_non_square_size_is_height_width(wide_image, color, channels):
    path, _ = wide_image
    assert read_images([path], size=(12, 40), color=color).shape == (1, 12, 40) + channels


def test_read_images_int_size_is_square(wide_image):
    path, _ = wide_image
    assert read_images([path], size=16).shape == (1, 16, 16)


def test_read_images_own_height_width_keeps_pixels(wide_image):
    # (20, 30) is the file's own (height, width), so nothing is resized.
    path, pixels = wide_image
    images = read_images([path], size=(20, 30), color=True)
    np.testing.assert_allclose(images[0], pixels / 255.0, atol=1e-6)
    np.testing.assert_array_equal(images, read_images([path], color=True))


def test_read_images_box_then_size_height_width(wide_image):
    # box is PIL's (left, upper, right, lower); size stays (height, width).
    path, pixels = wide_image
    images = read_images([path], box=(5, 2, 25, 12), size=(10, 20), color=True)
    np.testing.assert_allclose(images[0], pixels[2:12, 5:25] / 255.0, atol=1e-6)


@pytest.mark.parametrize("size", [0, (8,), (8, 0), (8.5, 8)])
def test_read_images_bad_size_raises(wide_image, size):
    path, _ = wide_image
    with pytest.raises(ValueError, match=r"size.*\(height, width\)"):
        read_images([path], size=size)
