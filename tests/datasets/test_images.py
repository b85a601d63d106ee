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


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("suffix", [".jpg", ".pgm", ".png"])
def test_read_images_truncated_file_error_names_file_dataset_and_fix(tmp_path, suffix):
    from PIL import Image

    rng = np.random.default_rng(0)
    good, bad = tmp_path / f"good{suffix}", tmp_path / f"bad{suffix}"
    for path in (good, bad):
        Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(path)
    _truncate(bad)
    with pytest.raises(OSError, match=rf"My faces: image .*bad\{suffix} cannot be decoded") as info:
        read_images([good, bad], dataset="My faces")
    message = str(info.value)
    assert "re-download" in message and "remove the file" in message


def test_read_images_missing_file_error_says_folder_incomplete(tmp_path, wide_image):
    path, _ = wide_image
    with pytest.raises(OSError, match=r"UTKFace: image .*gone\.png is missing.*incomplete"):
        read_images([path, tmp_path / "gone.png"], dataset="UTKFace")


def test_image_sizes_unreadable_header_error_names_file_and_dataset(tmp_path, wide_image):
    from skface.datasets._images import image_sizes

    path, _ = wide_image
    assert image_sizes([path]).tolist() == [[20, 30]]
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(OSError, match=r"YouTube Faces keypoints: image .*zero\.jpg cannot be decoded"):
        image_sizes([path, tmp_path / "zero.jpg"], dataset="YouTube Faces keypoints")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Aaron_0001.jpg", True), ("1.pgm", True), ("x.JPEG", True), ("a.jpg.chip.jpg", True),
        (".DS_Store", False), ("._Aaron_0001.jpg", False), ("Thumbs.db", False),
        ("desktop.ini", False), ("README", False), ("notes.txt", False),
    ],
)
def test_is_image_name_hidden_and_non_images_false(name, expected):
    from skface.datasets._images import is_image_name

    assert is_image_name(name) is expected


@pytest.mark.parametrize("color", [True, False])
def test_read_images_16bit_png_scaled_by_65535_not_clipped_white(tmp_path, color):
    from PIL import Image

    # A 16-bit grey gradient: Pillow's convert("RGB") clipped every value above 255,
    # so all but the darkest pixels read as white (1.0).
    pixels = np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    faces = read_images([tmp_path / "deep.png"], color=color)
    grey = faces[0][..., 0] if color else faces[0]
    np.testing.assert_allclose(grey, pixels / 65535.0, atol=1e-6)
    if color:
        assert faces.shape == (1, 20, 30, 3) and (faces[0] == grey[..., None]).all()
    small = read_images([tmp_path / "deep.png"], size=(10, 15), box=(0, 0, 30, 20), color=color)
    assert 0.4 < small.mean() < 0.6  # the gradient's mean, resized as floats
