import numpy as np
import pytest

from skface.datasets import ChecksumError, fetch, fetch_olivetti_faces


def true_faces(n=20, seed=0):
    """Faces as they should come out, (n, 64, 64) row-major, with an asymmetric mark."""
    rng = np.random.default_rng(seed)
    faces = rng.uniform(10, 200, (n, 64, 64))
    faces[:, 5, :] = 250.0  # a bright row near the top: a transpose would make it a column
    faces[0, 0, 0] = 3.0
    return faces


def write_mat(path, faces):
    """``olivettifaces.mat`` in Roweis's layout: ``faces`` is (4096, n), column-major images."""
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    columns = faces.transpose(0, 2, 1).reshape(len(faces), -1).T  # Matlab's column order
    savemat(path, {"faces": columns})
    return path


def write_decoded(folder, n_people=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    faces = rng.integers(0, 256, (10 * n_people, 64, 64), dtype=np.uint8)
    target = np.repeat(np.arange(n_people), 10)
    np.save(folder / "olivetti_faces_uint8.npy", faces)
    np.save(folder / "olivetti_target.npy", target)
    return faces, target


def test_fetch_olivetti_faces_decoded_layout_scaled_to_unit_range(tmp_path):
    faces, target = write_decoded(tmp_path / "olivetti")
    bunch = fetch_olivetti_faces(data_home=tmp_path)
    assert bunch.images.shape == (30, 64, 64) and bunch.images.dtype == np.float32
    np.testing.assert_array_equal(bunch.images, (faces / 255.0).astype(np.float32))
    assert bunch.data.shape == (30, 4096)
    np.testing.assert_array_equal(bunch.target, target)
    assert "Samaria" in bunch.DESCR and "AT&T" in bunch.DESCR


@pytest.mark.network
def test_fetch_olivetti_faces_mat_downloaded_and_decoded_like_sklearn(tmp_path, mirror):
    faces = true_faces()
    mirror(write_mat(tmp_path / "build" / "olivettifaces.mat", faces))
    home = tmp_path / "home"
    bunch = fetch_olivetti_faces(data_home=home)
    assert (home / "olivetti" / "olivettifaces.mat").exists()
    expected = (faces - faces.min()) / (faces.max() - faces.min())
    np.testing.assert_allclose(bunch.images, expected, atol=1e-6)
    assert bunch.images.min() == 0.0 and bunch.images.max() == 1.0
    assert (bunch.images[:, 5, :] == 1.0).all()  # the row stayed a row
    np.testing.assert_array_equal(bunch.target, np.repeat([0, 1], 10))
    assert bunch.data.shape == (20, 4096) and bunch.data.dtype == np.float32


@pytest.mark.network
def test_fetch_olivetti_faces_bad_checksum_raises_and_file_not_kept(tmp_path, mirror):
    mirror(write_mat(tmp_path / "build" / "olivettifaces.mat", true_faces()),
                   sha256="0" * 64)
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="olivettifaces.mat"):
        fetch_olivetti_faces(data_home=home)
    assert not (home / "olivetti" / "olivettifaces.mat").exists()


def test_fetch_olivetti_faces_mat_already_present_read_offline(tmp_path):
    faces = true_faces(n=10)
    write_mat(tmp_path / "olivetti" / "olivettifaces.mat", faces)
    bunch = fetch_olivetti_faces(data_home=tmp_path, download_if_missing=False)
    assert bunch.images.shape == (10, 64, 64)
    assert (bunch.target == 0).all()


def test_fetch_olivetti_faces_decoded_layout_preferred_over_mat(tmp_path):
    write_mat(tmp_path / "olivetti" / "olivettifaces.mat", true_faces(n=10))
    write_decoded(tmp_path / "olivetti", n_people=2)
    assert fetch_olivetti_faces(data_home=tmp_path).images.shape == (20, 64, 64)


def test_fetch_olivetti_faces_shuffle_same_order_as_sklearn(tmp_path):
    from sklearn.utils import check_random_state

    faces, target = write_decoded(tmp_path / "olivetti")
    plain = fetch_olivetti_faces(data_home=tmp_path)
    shuffled = fetch_olivetti_faces(data_home=tmp_path, shuffle=True, random_state=3)
    # scikit-learn's shuffle: one permutation drawn from the random state.
    order = check_random_state(3).permutation(30)
    np.testing.assert_array_equal(shuffled.images, plain.images[order])
    np.testing.assert_array_equal(shuffled.target, target[order])
    again = fetch_olivetti_faces(data_home=tmp_path, shuffle=True, random_state=3)
    np.testing.assert_array_equal(again.target, shuffled.target)


def test_fetch_olivetti_faces_return_X_y_data_and_target(tmp_path):
    write_decoded(tmp_path / "olivetti")
    X, y = fetch_olivetti_faces(data_home=tmp_path, return_X_y=True)
    assert X.shape == (30, 4096) and y.shape == (30,)


def test_fetch_olivetti_faces_absent_without_download_raises_naming_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fetch_olivetti_faces(data_home=tmp_path, download_if_missing=False)
    message = str(info.value)
    assert str(tmp_path / "olivetti") in message and "olivettifaces.mat" in message
    assert "figshare" in message  # the official URL


def test_fetch_olivetti_faces_malformed_decoded_files_raise(tmp_path):
    folder = tmp_path / "olivetti"
    folder.mkdir()
    np.save(folder / "olivetti_faces_uint8.npy", np.zeros((4, 32, 32), dtype=np.uint8))
    np.save(folder / "olivetti_target.npy", np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="64, 64"):
        fetch_olivetti_faces(data_home=tmp_path)


def test_fetch_olivetti_faces_registered_entry_point(tmp_path):
    write_decoded(tmp_path / "olivetti")
    assert fetch("olivetti_faces", data_home=tmp_path).images.shape == (30, 64, 64)


@pytest.mark.realdata
def test_fetch_olivetti_faces_real_400_faces_of_40_people(shared_data):
    bunch = fetch_olivetti_faces(data_home=shared_data)
    assert bunch.data.shape == (400, 4096) and bunch.data.dtype == np.float32
    assert bunch.images.shape == (400, 64, 64)
    assert 0.0 <= bunch.data.min() and bunch.data.max() <= 1.0
    np.testing.assert_array_equal(bunch.target, np.repeat(np.arange(40), 10))
    shuffled = fetch_olivetti_faces(data_home=shared_data, shuffle=True)
    assert np.bincount(shuffled.target).tolist() == [10] * 40
    assert not np.array_equal(shuffled.target, bunch.target)


@pytest.mark.parametrize("name", ["olivetti_faces_uint8.npy", "olivetti_target.npy"])
def test_fetch_olivetti_faces_zero_byte_decoded_file_raises_naming_file(tmp_path, name):
    write_decoded(tmp_path / "olivetti")
    (tmp_path / "olivetti" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"Olivetti faces: .*{name} cannot be read"):
        fetch_olivetti_faces(data_home=tmp_path)


def test_fetch_olivetti_faces_zero_byte_mat_raises_naming_file(tmp_path):
    (tmp_path / "olivetti").mkdir()
    (tmp_path / "olivetti" / "olivettifaces.mat").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Olivetti faces: .*olivettifaces\.mat cannot be read.*delete it"):
        fetch_olivetti_faces(data_home=tmp_path, download_if_missing=False)
