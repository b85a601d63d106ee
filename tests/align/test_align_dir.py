"""dir(skface.align) lists every documented name, the lazy ones too, without importing them."""

import subprocess
import sys


def test_align_dir_lists_all_exports_including_lazy_fetch_mtcnn_weights():
    import skface.align

    names = dir(skface.align)
    assert "fetch_mtcnn_weights" in names
    assert set(skface.align.__all__) <= set(names)


def test_align_dir_does_not_import_torch():
    code = ("import sys, skface.align as a; names = dir(a); "
            "print('fetch_mtcnn_weights' in names, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
