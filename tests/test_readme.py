"""The README's Python blocks run as written, top to bottom, on the shared data."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(text):
    """The ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_blocks_found_and_define_what_they_use():
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 3
    code = "\n".join(blocks)
    compile(code, "README.md", "exec")  # every block is valid Python
    # Names the estimator block uses come from the blocks before it.
    for name in ("faces", "utk", "frames", "dbn"):
        assert re.search(rf"^{name} = ", code, flags=re.M), name


def test_readme_blocks_extracted_in_order():
    text = "a\n```python\nx = 1\n```\nb\n```\nnot python\n```\n```python\ny = x\n```\n"
    assert readme_blocks(text) == ["x = 1\n", "y = x\n"]


@pytest.mark.slow
@pytest.mark.realdata
def test_readme_python_blocks_run_verbatim(shared_data, tmp_path):
    code = "\n".join(readme_blocks(README.read_text()))
    script = tmp_path / "readme.py"
    script.write_text(code)
    env = {**os.environ, "SKFACE_DATA": str(shared_data), "MPLBACKEND": "Agg"}
    # In a fresh folder: the blocks write model files where they run.
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "dbn.skface").exists()
    out = proc.stdout
    accuracy = float(re.search(r"gender accuracy: ([\d.]+)", out).group(1))
    mae = float(re.search(r"age MAE \(years\): ([\d.]+)", out).group(1))
    identity = float(re.search(r"identity accuracy: ([\d.]+)", out).group(1))
    # 3,000 random faces at 48 px: well above the majority gender (about 0.52) and
    # the mean-age predictor (about 15 years); 7 people, the largest 0.41 of them.
    assert accuracy > 0.75 and mae < 11.0 and identity > 0.6, out


CI_RUN = README.parent / ".ci" / "run"


def readme_test_command(text):
    """The one line of the fenced block after "Install and run the tests:"."""
    match = re.search(r"^Install and run the tests:\n+```\n(.*?)\n```", text, flags=re.M)
    return match.group(1) if match else None


def test_ci_run_main_job_runs_readme_test_command_verbatim():
    command = readme_test_command(README.read_text())
    # The default run exercises the distributed code: dask is installed, not skipped.
    assert command is not None and '".[test,distributed]"' in command
    assert command.endswith('python -m pytest -m "not slow"')
    # .ci/run's own extraction of the README, run by bash, gives the same line.
    script = CI_RUN.read_text()
    function = re.search(r"^readme_test_command\(\) \{.*?^\}", script, flags=re.S | re.M)
    assert function is not None
    proc = subprocess.run(["bash", "-c", f"{function.group(0)}\nreadme_test_command"],
                          cwd=README.parent, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == command
    # ... and the main job runs that and installs nothing else for the tests.
    main_job = re.search(r"^main_job\(\) \{.*?^\}", script, flags=re.S | re.M).group(0)
    assert 'eval "$cmd"' in main_job and "pip install" not in main_job
