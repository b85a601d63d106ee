"""Progress bars: tqdm's rule by default (a terminal shows them, a pipe does not), verbose forces."""

import os
import subprocess
import sys

import pytest

_FIT = (
    "import numpy as np, torch; torch.set_num_threads(1)\n"
    "from skface.estimators import ConvSDAEFeatures\n"
    "X = np.random.default_rng(0).random((16, 8, 8), dtype=np.float32)\n"
    "ConvSDAEFeatures((2, 2), pretrain_epochs=2, batch_size=8, random_state=0{extra}).fit(X)\n"
)


def _run_piped(extra=""):
    result = subprocess.run([sys.executable, "-c", _FIT.format(extra=extra)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def _run_in_terminal(extra=""):
    """stderr and stdout of the fit on a pseudo-terminal, as a user's shell gives them."""
    fcntl = pytest.importorskip("fcntl")
    pty = pytest.importorskip("pty")
    termios = pytest.importorskip("termios")
    import struct

    main, child = pty.openpty()
    # A terminal of 24 x 100 characters: a fresh pty is 0 wide, and tqdm fits bars to it.
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", _FIT.format(extra=extra)],
                            stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_progress_default_in_pipe_prints_nothing():
    assert "epoch" not in _run_piped()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty needs a POSIX system")
def test_progress_default_in_terminal_names_every_stage():
    out = _run_in_terminal()
    assert "layer 1" in out and "layer 2" in out and "epoch" in out, out


def test_progress_verbose_1_forces_bars_in_pipe():
    err = _run_piped(", verbose=1")
    assert "layer 1" in err and "epoch" in err


def test_progress_verbose_0_in_terminal_prints_nothing():
    assert "epoch" not in _run_in_terminal(", verbose=0")


def test_progress_bad_verbose_refused_at_fit():
    from skface.estimators import ConvSDAEFeatures

    with pytest.raises(ValueError, match="verbose must be 'auto' or a non-negative int"):
        ConvSDAEFeatures(verbose="loud").fit([[[0.0]]])
