import io
import tarfile
import zipfile

import numpy as np
import pytest

from skface.datasets import ChecksumError, fetch_lfw_people
from skface.datasets._download import download, ensure_files, safe_extract

from .conftest import build_lfw


def _tgz(path, root, arcname):
    with tarfile.open(path, "w:gz") as tf:
        tf.add(root, arcname=arcname)
    return path


@pytest.mark.network
def test_download_from_local_mirror_verifies_and_keeps_file(mirror, tmp_path):
    src = tmp_path / "pairs.txt"
    src.write_text("10\t300\n")
    mirror(src)
    path = download("pairs.txt", tmp_path / "home")
    assert path.read_text() == "10\t300\n"


@pytest.mark.network
def test_download_checksum_mismatch_raises_and_deletes_file(mirror, tmp_path):
    src = tmp_path / "pairs.txt"
    src.write_text("tampered\n")
    mirror(src, sha256="0" * 64)
    dest = tmp_path / "home"
    with pytest.raises(ChecksumError, match="pairs.txt.*does not match"):
        download("pairs.txt", dest)
    assert not (dest / "pairs.txt").exists()
    assert not dest.exists()  # no temporary leftovers, not even the folder it made


@pytest.mark.network
def test_download_checksum_mismatch_existing_folder_kept_empty(mirror, tmp_path):
    src = tmp_path / "pairs.txt"
    src.write_text("tampered\n")
    mirror(src, sha256="0" * 64)
    dest = tmp_path / "home"
    dest.mkdir()  # the user's folder: never removed
    with pytest.raises(ChecksumError):
        download("pairs.txt", dest)
    assert list(dest.iterdir()) == []


@pytest.mark.network
def test_fetch_lfw_people_missing_downloads_archive_from_mirror(mirror, tmp_path):
    built = build_lfw(tmp_path / "built")
    archive = _tgz(tmp_path / "lfw-deepfunneled.tgz", built / "lfw" / "lfw-deepfunneled", "lfw-deepfunneled")
    mirror(archive)
    for name in ("peopleDevTest.txt",):
        mirror(built / "lfw" / name)
    home = tmp_path / "home"
    bunch = fetch_lfw_people(data_home=home, subset="dev_test")
    assert bunch.images.shape == (2, 62, 47)
    assert (home / "lfw" / "lfw-deepfunneled" / "Bob_Jones").is_dir()
    assert not (home / "lfw" / "lfw-deepfunneled.tgz").exists()  # archive removed after extraction


def test_ensure_files_no_download_names_folder_files_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        ensure_files(tmp_path, ["pairs.txt"], remote=["pairs.txt"], download_if_missing=False, dataset="LFW")
    msg = str(err.value)
    assert str(tmp_path) in msg and "pairs.txt" in msg and "https://ndownloader.figshare.com/files/5976006" in msg


def test_ensure_files_manual_dataset_names_page(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot be downloaded automatically.*kaggle.com"):
        ensure_files(tmp_path, ["training.csv"], dataset="Kaggle", manual_url="https://www.kaggle.com/c/x")


def _evil_tar(path, member_name, kind="file", linkname=None):
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo(member_name)
        if kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = linkname
            tf.addfile(info)
        else:
            data = b"pwned"
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "member, kind, linkname",
    [
        ("../escaped.txt", "file", None),
        ("/tmp/skface_absolute_escape.txt", "file", None),
        ("faces/../../escaped.txt", "file", None),
        ("faces/link", "symlink", "../../outside"),
    ],
)
def test_safe_extract_tar_member_escaping_target_rejected(tmp_path, member, kind, linkname):
    archive = _evil_tar(tmp_path / "evil.tar", member, kind, linkname)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="outside"):
        safe_extract(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert not any(dest.rglob("*"))  # nothing written before the check


def test_safe_extract_zip_member_escaping_target_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escaped.txt", "pwned")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_safe_extract_normal_archive_extracts(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "b.txt").write_text("hello")
    archive = _tgz(tmp_path / "ok.tgz", src, "top")
    safe_extract(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "top" / "a" / "b.txt").read_text() == "hello"


def test_cached_arrays_key_changes_with_params(tmp_path):
    from skface.datasets._cache import cached_arrays

    calls = []

    def compute(v):
        def inner():
            calls.append(v)
            return {"x": np.full(3, v)}
        return inner

    src = tmp_path / "src"
    src.mkdir()
    a = cached_arrays("t", {"v": 1}, src, compute(1), cache_home=tmp_path / "c")
    b = cached_arrays("t", {"v": 1}, src, compute(1), cache_home=tmp_path / "c")
    c = cached_arrays("t", {"v": 2}, src, compute(2), cache_home=tmp_path / "c")
    assert calls == [1, 2]
    assert a["x"].tolist() == b["x"].tolist() == [1, 1, 1] and c["x"].tolist() == [2, 2, 2]
    (src / "new_file").touch()  # the source folder changed: decode again
    cached_arrays("t", {"v": 1}, src, compute(1), cache_home=tmp_path / "c")
    assert calls == [1, 2, 1]


def test_cached_arrays_entry_keyed_as_width_height_not_served(tmp_path, monkeypatch):
    from skface.datasets import _cache

    # Under version 1 a size tuple meant (width, height): (12, 30) gave 30 rows
    # of 12. The same params must now miss that entry and decode (12, 30) anew.
    src = tmp_path / "src"
    src.mkdir()
    params = {"size": (12, 30), "color": False}
    with monkeypatch.context() as patch:
        patch.setattr(_cache, "CACHE_VERSION", 1)
        old = _cache.cached_arrays(
            "t", params, src, lambda: {"images": np.zeros((1, 30, 12))}, cache_home=tmp_path / "c"
        )
    assert old["images"].shape == (1, 30, 12)
    new = _cache.cached_arrays(
        "t", params, src, lambda: {"images": np.zeros((1, 12, 30))}, cache_home=tmp_path / "c"
    )
    assert new["images"].shape == (1, 12, 30)


# --- network and I/O failures: one error class, a message that says what to do -------


def _no_files(folder):
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_download_error_is_exported_oserror():
    from skface.datasets import DownloadError

    assert issubclass(DownloadError, OSError)


@pytest.mark.network
def test_download_closed_port_raises_download_error_naming_url_file_and_mirror(
    closed_port_url, monkeypatch, tmp_path
):
    import requests

    from skface.datasets import DownloadError

    monkeypatch.setenv("SKFACE_MIRROR", closed_port_url)
    dest = tmp_path / "home"
    with pytest.raises(DownloadError) as info:
        download("pairs.txt", dest)
    message = str(info.value)
    assert f"{closed_port_url}/pairs.txt" in message and str(dest) in message
    assert f"SKFACE_MIRROR is set ('{closed_port_url}')" in message
    assert "unset SKFACE_MIRROR" in message and "by hand" in message
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert _no_files(dest)


@pytest.mark.network
def test_download_server_404_raises_download_error(mirror, tmp_path):
    from skface.datasets import DownloadError

    # The mirror is up but does not hold the file.
    with pytest.raises(DownloadError, match=r"pairs\.txt from http://127\.0\.0\.1:\d+/pairs\.txt.*404"):
        download("pairs.txt", tmp_path / "home")
    assert _no_files(tmp_path / "home")


@pytest.mark.network
def test_download_truncated_response_raises_download_error_and_keeps_nothing(
    truncating_server, monkeypatch, tmp_path
):
    import requests

    from skface.datasets import DownloadError

    monkeypatch.setenv("SKFACE_MIRROR", truncating_server)
    dest = tmp_path / "home"
    with pytest.raises(DownloadError, match=r"Could not download pairs\.txt") as info:
        download("pairs.txt", dest)
    assert isinstance(info.value.__cause__, requests.exceptions.ChunkedEncodingError)
    assert _no_files(dest)  # no partial file, no temporary file


@pytest.mark.network
def test_download_unreachable_official_url_says_mirror_not_set(closed_port_url, tmp_path):
    from skface.datasets import DownloadError

    url = f"{closed_port_url}/model.skface"
    with pytest.raises(DownloadError, match=r"SKFACE_MIRROR is not set.*official URL") as info:
        download("model.skface", tmp_path, url=url, known_hash="sha256:" + "0" * 64)
    assert url in str(info.value)


def test_download_unwritable_folder_raises_download_error(tmp_path):
    from skface.datasets import DownloadError

    (tmp_path / "a_file").write_text("")
    with pytest.raises(DownloadError, match=r"cannot be created.*writable folder"):
        download("pairs.txt", tmp_path / "a_file" / "lfw")


@pytest.mark.parametrize(
    "value", ["/srv/mirror", "file:///srv/mirror", "localhost:8000", "127.0.0.1:8000/lfw", "mirror.example.org"]
)
def test_download_non_url_mirror_raises_value_error_naming_variable(monkeypatch, tmp_path, value):
    monkeypatch.setenv("SKFACE_MIRROR", value)
    with pytest.raises(ValueError, match=r"SKFACE_MIRROR environment variable is .*not a URL.*http://"):
        download("pairs.txt", tmp_path)
    with pytest.raises(ValueError, match="SKFACE_MIRROR"):
        fetch_lfw_people(data_home=tmp_path / "home")
    assert not (tmp_path / "home").exists()


@pytest.mark.network
def test_fetch_lfw_people_mirror_closed_port_raises_download_error(closed_port_url, monkeypatch, tmp_path):
    from skface.datasets import DownloadError

    monkeypatch.setenv("SKFACE_MIRROR", closed_port_url)
    with pytest.raises(DownloadError, match=r"lfw-deepfunneled\.tgz"):
        fetch_lfw_people(data_home=tmp_path / "home")
    assert _no_files(tmp_path / "home")


@pytest.mark.network
def test_fetch_lfw_people_wrong_checksum_keeps_nothing(mirror, tmp_path):
    built = build_lfw(tmp_path / "built")
    archive = _tgz(tmp_path / "lfw-deepfunneled.tgz", built / "lfw" / "lfw-deepfunneled", "lfw-deepfunneled")
    mirror(archive, sha256="0" * 64)
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="lfw-deepfunneled.tgz"):
        fetch_lfw_people(data_home=home)
    assert _no_files(home)


# --- refused or misshapen archives leave nothing in the data home ---------------------


def _archive_with(path, members):
    """A .tgz holding ``members``: name -> bytes."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.network
@pytest.mark.parametrize("escaping", ["../escaped.txt", "../../escaped.txt", "lfw-deepfunneled/../../escaped.txt"])
def test_fetch_lfw_people_path_escaping_archive_leaves_nothing(mirror, tmp_path, escaping):
    members = {f"lfw-deepfunneled/Alice_Smith/Alice_Smith_{i:04d}.jpg": b"jpeg" for i in (1, 2)}
    members[escaping] = b"pwned"
    mirror(_archive_with(tmp_path / "lfw-deepfunneled.tgz", members))
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="outside"):
        fetch_lfw_people(data_home=home)
    assert _no_files(home)  # neither its members, nor the archive, nor a staging folder
    assert not any(tmp_path.rglob("escaped.txt"))
    assert not (home / "lfw").exists() or list((home / "lfw").iterdir()) == []


@pytest.mark.network
def test_fetch_lfw_people_archive_wrong_layout_leaves_nothing(mirror, tmp_path):
    members = {f"faces/Alice_Smith/Alice_Smith_{i:04d}.jpg": b"jpeg" for i in (1, 2)}
    mirror(_archive_with(tmp_path / "lfw-deepfunneled.tgz", members))
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError, match=r"lfw-deepfunneled is still missing.*layout.*nothing of it was kept"):
        fetch_lfw_people(data_home=home)
    assert _no_files(home)
    assert not (home / "lfw").exists() or list((home / "lfw").iterdir()) == []


@pytest.mark.network
def test_ensure_files_archive_merged_into_existing_folder(mirror, tmp_path, monkeypatch):
    from skface.datasets import _download

    monkeypatch.setitem(_download._registry(), "extra.tgz", ("sha256:" + "0" * 64, "https://example.invalid/extra.tgz"))
    mirror(_archive_with(tmp_path / "extra.tgz", {"top/b.txt": b"b", "top/sub/c.txt": b"c"}))
    folder = tmp_path / "home" / "ds"
    (folder / "top").mkdir(parents=True)
    (folder / "top" / "a.txt").write_text("a")
    ensure_files(folder, ["top/b.txt"], remote=["extra.tgz"], dataset="test")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "top/a.txt", "top/b.txt", "top/sub/c.txt"
    ]
    assert [p.name for p in folder.iterdir()] == ["top"]  # no staging folder left


@pytest.mark.network
@pytest.mark.parametrize("name", ["lfw_people", "lfw_pairs", "olivetti_faces", "imdb_wiki",
                                  "celeba"])
def test_fetch_failed_download_leaves_no_folder_and_is_announced(
    closed_port_url, monkeypatch, tmp_path, capsys, name
):
    from skface.datasets import DownloadError, fetch, get_dataset_info

    monkeypatch.setenv("SKFACE_MIRROR", closed_port_url)
    home = tmp_path / "home"
    home.mkdir()  # the data home is the user's: kept; the dataset folder skface made is not
    with pytest.raises(DownloadError):
        fetch(name, data_home=home)
    assert list(home.iterdir()) == []
    announced = capsys.readouterr().err
    assert "skface: downloading" in announced and closed_port_url in announced
    assert str(get_dataset_info(name).path(home)) in announced


@pytest.mark.network
def test_download_onto_symlink_keeps_link_and_replaces_its_target(mirror, tmp_path):
    # A download went through a rename onto the path: a link there became a plain file.
    src = tmp_path / "pairs.txt"
    src.write_text("10\t300\n")
    mirror(src)
    store, home = tmp_path / "store", tmp_path / "home"
    store.mkdir()
    home.mkdir()
    (store / "pairs.txt").write_text("stale\n")  # not the pinned file: downloaded again
    (home / "pairs.txt").symlink_to(store / "pairs.txt")
    path = download("pairs.txt", home)
    assert path == home / "pairs.txt" and path.is_symlink()
    assert (store / "pairs.txt").read_text() == "10\t300\n"
    assert sorted(p.name for p in store.iterdir()) == ["pairs.txt"]  # no partial file
    assert download("pairs.txt", home) == path  # verified, kept: not downloaded again


_FULL_DISK_DOWNLOAD = """
import sys
from skface.datasets._download import download
try:
    download("big.bin", sys.argv[1], url="https://example.invalid/big.bin",
             known_hash="sha256:" + sys.argv[2])
except OSError as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
    sys.exit(2)
"""


@pytest.mark.network
def test_download_full_disk_download_error_says_disk_full_and_keeps_nothing(mirror, tmp_path):
    import hashlib
    import subprocess
    import sys

    big = tmp_path / "big.bin"
    big.write_bytes(np.random.RandomState(0).bytes(64 * 1024))
    mirror(big)
    home = tmp_path / "home"
    home.mkdir()
    # ulimit -f 16: no file over 16 KB; Python ignores SIGXFSZ: writes fail with EFBIG.
    proc = subprocess.run(
        ["bash", "-c", 'ulimit -f 16; exec "$0" -c "$1" "$2" "$3"', sys.executable,
         _FULL_DISK_DOWNLOAD, str(home), hashlib.sha256(big.read_bytes()).hexdigest()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("DownloadError Could not download big.bin from http"), \
        proc.stderr
    assert (f"Could not write the download of big.bin {home / 'big.bin'}: the disk is full "
            "(or a file-size limit was reached); nothing was written.") in proc.stderr
    assert list(home.iterdir()) == []
