import zipfile

import numpy as np
import pytest

from skface.datasets import ChecksumError, fetch, fetch_celeba
from skface.datasets import _celeba

ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips "
    "Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin "
    "Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open "
    "Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
LANDMARK_HEADER = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
    "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)
# Six images: partition 0 0 0 1 1 2 as in the official list (train first).
N = 6
PARTITION = [0, 0, 0, 1, 1, 2]
IDENTITY = [2880, 2937, 8692, 5805, 9295, 4153]


def _files():
    return [f"{i:06d}.jpg" for i in range(1, N + 1)]


def _attributes():
    rng = np.random.default_rng(1)
    return rng.choice([-1, 1], size=(N, 40))


def _landmarks():
    base = np.array([69, 109, 106, 113, 77, 142, 73, 152, 108, 154])
    return base + np.arange(N)[:, None]


def build_celeba(root, with_images=True):
    """Write the official CelebA files (real formats, tiny) under ``root/celeba``."""
    from PIL import Image

    folder = root / "celeba"
    rng = np.random.default_rng(0)
    if with_images:
        (folder / "img_align_celeba").mkdir(parents=True)
        for name in _files():
            pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=90)
    folder.mkdir(parents=True, exist_ok=True)
    attrs = _attributes()
    lines = [str(N), " ".join(ATTRIBUTE_NAMES) + " "]
    lines += [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(_files(), attrs)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    # Rows of one file in another order: they are matched by file name.
    rows = [f"{f} {i}" for f, i in zip(_files(), IDENTITY)]
    (folder / "identity_CelebA.txt").write_text("\n".join(rows[::-1]) + "\n")
    rows = [f"{f} {p}" for f, p in zip(_files(), PARTITION)]
    (folder / "list_eval_partition.txt").write_text("\n".join(rows) + "\n")
    lines = [str(N), LANDMARK_HEADER]
    lines += [f"{f} " + "".join(f"{v:5d}" for v in row) for f, row in zip(_files(), _landmarks())]
    (folder / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def celeba_home(tmp_path):
    return build_celeba(tmp_path / "home")


def test_fetch_celeba_official_files_parsed(celeba_home):
    bunch = fetch_celeba(data_home=celeba_home)
    assert list(bunch.filenames) == _files()
    assert list(bunch.attribute_names) == ATTRIBUTE_NAMES
    assert bunch.attributes.shape == (N, 40)
    np.testing.assert_array_equal(bunch.attributes, (_attributes() + 1) // 2)
    assert set(np.unique(bunch.attributes)) <= {0, 1}
    np.testing.assert_array_equal(bunch.identity, IDENTITY)
    np.testing.assert_array_equal(bunch.partition, PARTITION)
    assert list(bunch.partition_names) == ["train", "valid", "test"]
    assert bunch.landmarks.shape == (N, 5, 2) and bunch.landmarks.dtype == np.float32
    np.testing.assert_array_equal(bunch.landmarks.reshape(N, 10), _landmarks())
    np.testing.assert_array_equal(bunch.target, bunch.attributes)
    np.testing.assert_array_equal(bunch.target_names, bunch.attribute_names)
    assert "Liu" in bunch.DESCR and "non-commercial" in bunch.DESCR


def test_fetch_celeba_default_images_full_size_rgb_float32(celeba_home):
    bunch = fetch_celeba(data_home=celeba_home)
    assert bunch.images.shape == (N, 218, 178, 3)
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (N, 218 * 178 * 3)
    assert 0.0 <= bunch.images.min() and bunch.images.max() <= 1.0


@pytest.mark.parametrize("split, rows", [("train", [0, 1, 2]), ("valid", [3, 4]), ("test", [5])])
def test_fetch_celeba_split_follows_partition_file(celeba_home, split, rows):
    bunch = fetch_celeba(data_home=celeba_home, split=split, size=8)
    assert list(bunch.filenames) == [_files()[i] for i in rows]
    np.testing.assert_array_equal(bunch.identity, [IDENTITY[i] for i in rows])
    np.testing.assert_array_equal(bunch.attributes, (_attributes()[rows] + 1) // 2)
    assert bunch.images.shape == (len(rows), 8, 8, 3)


@pytest.mark.parametrize(
    "target, shape", [("attributes", (N, 40)), ("identity", (N,)), ("landmarks", (N, 10))]
)
def test_fetch_celeba_target_choice_sets_target(celeba_home, target, shape):
    bunch = fetch_celeba(data_home=celeba_home, target=target, size=8, color=False)
    assert bunch.target.shape == shape
    assert bunch.images.shape == (N, 8, 8)
    assert ("target_names" in bunch) == (target == "attributes")


def test_fetch_celeba_box_and_size_move_landmarks_with_image(celeba_home):
    box, size = (9, 29, 169, 189), (40, 80)  # size is (height, width)
    bunch = fetch_celeba(data_home=celeba_home, box=box, size=size, target="landmarks")
    assert bunch.images.shape == (N, 40, 80, 3)
    raw = _landmarks().reshape(N, 5, 2).astype(np.float64)
    # Landmarks are (x, y): x scales with the width (80), y with the height (40).
    expected = (raw - [9, 29]) * [80 / 160, 40 / 160]
    np.testing.assert_allclose(bunch.landmarks, expected, rtol=1e-6)
    np.testing.assert_allclose(bunch.target, expected.reshape(N, 10), rtol=1e-6)
    cropped = fetch_celeba(data_home=celeba_home, box=box)
    assert cropped.images.shape == (N, 160, 160, 3)
    np.testing.assert_allclose(cropped.landmarks, raw - [9, 29])


@pytest.mark.parametrize("color, channels", [(True, (3,)), (False, ())])
def test_fetch_celeba_non_square_size_is_height_width(celeba_home, color, channels):
    bunch = fetch_celeba(data_home=celeba_home, size=(12, 30), color=color)
    assert bunch.images.shape == (N, 12, 30) + channels
    # x scales by the new width over 178, y by the new height over 218.
    raw = _landmarks().reshape(N, 5, 2).astype(np.float64)
    np.testing.assert_allclose(bunch.landmarks, raw * [30 / 178, 12 / 218], rtol=1e-6)


def test_fetch_celeba_size_of_aligned_image_keeps_pixels(celeba_home):
    # (218, 178) is the aligned image's own (height, width): nothing is resized.
    full = fetch_celeba(data_home=celeba_home, max_images=2)
    same = fetch_celeba(data_home=celeba_home, max_images=2, size=(218, 178))
    np.testing.assert_array_equal(same.images, full.images)
    np.testing.assert_allclose(same.landmarks, full.landmarks)


def test_fetch_celeba_max_images_keeps_first_of_split(celeba_home):
    bunch = fetch_celeba(data_home=celeba_home, split="train", max_images=2, size=8)
    assert list(bunch.filenames) == _files()[:2]
    bunch = fetch_celeba(data_home=celeba_home, split="valid", max_images=1, size=8)
    assert list(bunch.filenames) == [_files()[3]]


def test_fetch_celeba_return_X_y_gives_data_and_target(celeba_home):
    X, y = fetch_celeba(data_home=celeba_home, target="identity", size=8, return_X_y=True)
    assert X.shape == (N, 8 * 8 * 3) and X.dtype == np.float32
    np.testing.assert_array_equal(y, IDENTITY)


def test_fetch_celeba_second_call_reads_cache(celeba_home, monkeypatch):
    first = fetch_celeba(data_home=celeba_home, size=8)

    def fail(*args, **kwargs):
        raise AssertionError("images were decoded again instead of read from the cache")

    monkeypatch.setattr(_celeba, "read_images", fail)
    second = fetch_celeba(data_home=celeba_home, size=8)
    for key in ("images", "attributes", "identity", "landmarks", "partition", "filenames"):
        np.testing.assert_array_equal(first[key], second[key])


def test_fetch_celeba_missing_files_no_download_names_folder_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fetch_celeba(data_home=tmp_path, download_if_missing=False)
    message = str(info.value)
    assert str(tmp_path / "celeba") in message
    assert "img_align_celeba" in message and "download_if_missing=False" in message
    assert "drive.google.com" in message


def test_fetch_celeba_missing_annotation_no_download_names_it(tmp_path):
    home = build_celeba(tmp_path)
    (home / "celeba" / "list_landmarks_align_celeba.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_landmarks_align_celeba.txt"):
        fetch_celeba(data_home=home, download_if_missing=False)


def test_fetch_celeba_missing_image_raises_naming_it(celeba_home):
    (celeba_home / "celeba" / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000005.jpg"):
        fetch_celeba(data_home=celeba_home, size=8)


def test_fetch_celeba_annotation_row_missing_raises(celeba_home):
    path = celeba_home / "celeba" / "identity_CelebA.txt"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("000003")]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="identity_CelebA.txt.*000003.jpg"):
        fetch_celeba(data_home=celeba_home, size=8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, "split"),
        ({"target": "gender"}, "target"),
        ({"box": (0, 0, 200, 218)}, "box"),
        ({"max_images": 0}, "max_images"),
        ({"size": (8,)}, "size"),
    ],
)
def test_fetch_celeba_bad_parameter_raises_clear_error(celeba_home, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_celeba(data_home=celeba_home, **kwargs)


def _publish_celeba(mirror, tmp_path):
    built = build_celeba(tmp_path / "built")
    archive = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(built / "celeba" / "img_align_celeba", "img_align_celeba/")
        for name in _files():
            zf.write(built / "celeba" / "img_align_celeba" / name, f"img_align_celeba/{name}")
    mirror(archive)
    for name in _celeba.TEXT_FILES:
        mirror(built / "celeba" / name)


@pytest.mark.network
def test_fetch_celeba_missing_downloads_from_mirror(mirror, tmp_path):
    _publish_celeba(mirror, tmp_path)
    home = tmp_path / "home"
    bunch = fetch("celeba", data_home=home, split="valid", size=8)
    assert list(bunch.filenames) == _files()[3:5]
    np.testing.assert_array_equal(bunch.identity, IDENTITY[3:5])
    folder = home / "celeba"
    assert sorted(p.name for p in (folder / "img_align_celeba").iterdir()) == _files()
    assert not (folder / "img_align_celeba.zip").exists()  # extracted, then deleted
    for name in _celeba.TEXT_FILES:
        assert (folder / name).is_file()


@pytest.mark.network
def test_fetch_celeba_partial_folder_downloads_only_missing(mirror, tmp_path):
    _publish_celeba(mirror, tmp_path)
    home = build_celeba(tmp_path / "home")
    (home / "celeba" / "identity_CelebA.txt").unlink()
    (mirror.root / "img_align_celeba.zip").unlink()  # a request for it would now fail
    bunch = fetch_celeba(data_home=home, size=8)
    np.testing.assert_array_equal(bunch.identity, IDENTITY)


@pytest.mark.network
def test_fetch_celeba_checksum_mismatch_raises_with_manual_hint(mirror, tmp_path):
    home = build_celeba(tmp_path / "home")
    (home / "celeba" / "list_eval_partition.txt").unlink()
    served = tmp_path / "list_eval_partition.txt"
    served.write_text("<html>Google Drive can't scan this file for viruses</html>\n")
    mirror(served, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="mmlab.ie.cuhk.edu.hk"):
        fetch_celeba(data_home=home, size=8)
    assert not (home / "celeba" / "list_eval_partition.txt").exists()


@pytest.mark.parametrize(
    "name", ["list_eval_partition.txt", "list_attr_celeba.txt", "identity_CelebA.txt", "list_landmarks_align_celeba.txt"]
)
def test_fetch_celeba_zero_byte_list_file_raises_naming_file(celeba_home, name):
    (celeba_home / "celeba" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"CelebA: .*{name} (is empty|has no attribute names)"):
        fetch_celeba(data_home=celeba_home, download_if_missing=False)


def test_fetch_celeba_edited_attribute_file_not_served_stale(celeba_home):
    first = fetch_celeba(data_home=celeba_home, size=8)
    path = celeba_home / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    values = lines[2].split()
    values[1] = "1" if values[1] == "-1" else "-1"  # first attribute of the first image flipped
    lines[2] = " ".join(values)
    path.write_text("\n".join(lines) + "\n")
    second = fetch_celeba(data_home=celeba_home, size=8)
    assert second.attributes[0, 0] == 1 - first.attributes[0, 0]
    np.testing.assert_array_equal(second.attributes[1:], first.attributes[1:])
