import numpy as np
import pytest

from skface.datasets import fetch, fetch_orl_faces

# Subjects and image numbers chosen so that lexicographic order differs from numeric.
SUBJECTS = (1, 2, 10)
IMAGES = (1, 2, 10)


def write_pgm(path, pixels):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path)  # binary PGM (P5), as the originals


def build_orl(home, subjects=SUBJECTS, images=IMAGES, seed=0):
    rng = np.random.default_rng(seed)
    root = home / "orl" / "att_faces"
    pixels = {}
    for k in subjects:
        for n in images:
            face = rng.integers(0, 256, (112, 92), dtype=np.uint8)
            write_pgm(root / f"s{k}" / f"{n}.pgm", face)
            pixels[f"s{k}/{n}.pgm"] = face
    (root / "README").write_text("The ORL Database of Faces\n")
    return pixels


def test_fetch_orl_faces_numeric_order_of_subjects_and_images(tmp_path):
    build_orl(tmp_path)
    bunch = fetch_orl_faces(data_home=tmp_path)
    assert list(bunch.filenames) == [
        "s1/1.pgm", "s1/2.pgm", "s1/10.pgm",
        "s2/1.pgm", "s2/2.pgm", "s2/10.pgm",
        "s10/1.pgm", "s10/2.pgm", "s10/10.pgm",
    ]
    assert list(bunch.target_names) == ["s1", "s2", "s10"]
    np.testing.assert_array_equal(bunch.target, np.repeat([0, 1, 2], 3))


def test_fetch_orl_faces_pgm_pixels_decoded_exactly(tmp_path):
    pixels = build_orl(tmp_path)
    bunch = fetch_orl_faces(data_home=tmp_path)
    assert bunch.images.shape == (9, 112, 92) and bunch.images.dtype == np.float32
    assert bunch.data.shape == (9, 112 * 92)
    for image, name in zip(bunch.images, bunch.filenames):
        np.testing.assert_allclose(image, pixels[name] / 255.0, atol=1e-6)
    assert "Samaria" in bunch.DESCR and "AT&T" in bunch.DESCR


def test_fetch_orl_faces_full_layout_target_is_subject_minus_one(tmp_path):
    build_orl(tmp_path, subjects=range(1, 41), images=(1,))
    bunch = fetch_orl_faces(data_home=tmp_path)
    expected = [int(name.split("/")[0][1:]) - 1 for name in bunch.filenames]
    np.testing.assert_array_equal(bunch.target, expected)
    assert bunch.target_names[bunch.target[-1]] == "s40"


def test_fetch_orl_faces_size_resizes_images(tmp_path):
    build_orl(tmp_path)
    bunch = fetch_orl_faces(data_home=tmp_path, size=(56, 46))
    assert bunch.images.shape == (9, 56, 46)
    assert fetch_orl_faces(data_home=tmp_path, size=32).images.shape == (9, 32, 32)


def test_fetch_orl_faces_non_square_size_is_height_width(tmp_path):
    pixels = build_orl(tmp_path)
    assert fetch_orl_faces(data_home=tmp_path, size=(30, 70)).images.shape == (9, 30, 70)
    # The files' own (height, width) = (112, 92) resizes nothing: exact pixels.
    bunch = fetch_orl_faces(data_home=tmp_path, size=(112, 92))
    assert bunch.images.shape == (9, 112, 92)
    np.testing.assert_allclose(bunch.images[0], pixels[bunch.filenames[0]] / 255.0, atol=1e-6)


def test_fetch_orl_faces_return_X_y_data_and_target(tmp_path):
    build_orl(tmp_path)
    X, y = fetch_orl_faces(data_home=tmp_path, return_X_y=True)
    assert X.shape == (9, 112 * 92) and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_fetch_orl_faces_stray_files_ignored(tmp_path):
    build_orl(tmp_path, subjects=(1,), images=(1, 2))
    root = tmp_path / "orl" / "att_faces"
    (root / "s1" / "Thumbs.db").write_bytes(b"\0")
    (root / "extra").mkdir()
    (root / "s2.pgm").write_bytes(b"")
    assert list(fetch_orl_faces(data_home=tmp_path).filenames) == ["s1/1.pgm", "s1/2.pgm"]


@pytest.mark.parametrize("download_if_missing", [True, False])
def test_fetch_orl_faces_absent_files_raise_naming_folder_and_url(tmp_path, download_if_missing):
    with pytest.raises(FileNotFoundError) as info:
        fetch_orl_faces(data_home=tmp_path, download_if_missing=download_if_missing)
    message = str(info.value)
    assert str(tmp_path / "orl") in message and "att_faces" in message
    assert "cl.cam.ac.uk" in message


def test_fetch_orl_faces_empty_folder_raises(tmp_path):
    (tmp_path / "orl" / "att_faces" / "s1").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="s<k>/<n>.pgm"):
        fetch_orl_faces(data_home=tmp_path)


def test_fetch_orl_faces_registered_entry_point_and_presence(tmp_path):
    assert not fetch_orl_faces.dataset_info.is_present(tmp_path)
    build_orl(tmp_path)
    assert fetch_orl_faces.dataset_info.is_present(tmp_path)
    assert fetch("orl_faces", data_home=tmp_path).images.shape == (9, 112, 92)


@pytest.mark.realdata
def test_fetch_orl_faces_real_400_faces_of_40_subjects(shared_data):
    bunch = fetch_orl_faces(data_home=shared_data)
    assert bunch.images.shape == (400, 112, 92) and bunch.data.shape == (400, 10304)
    assert list(bunch.target_names) == [f"s{k}" for k in range(1, 41)]
    np.testing.assert_array_equal(bunch.target, np.repeat(np.arange(40), 10))
    assert list(bunch.filenames[:10]) == [f"s1/{n}.pgm" for n in range(1, 11)]
    assert 0.0 <= bunch.data.min() and bunch.data.max() <= 1.0


def test_fetch_orl_faces_truncated_pgm_error_names_file_dataset_and_fix(tmp_path):
    build_orl(tmp_path, subjects=(1, 2), images=(1, 2))
    path = tmp_path / "orl" / "att_faces" / "s2" / "1.pgm"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"AT&T \(ORL\) faces: image .*s2/1\.pgm.*truncated.*re-download"):
        fetch_orl_faces(data_home=tmp_path)
