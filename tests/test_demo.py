"""Tests for ``skface demo``: stages, fallback to the bundled sample, the report."""

import json
import os
import re
import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from skface import cli  # noqa: E402
from skface.demo import PRESETS, run_demo  # noqa: E402
from skface.demo import _stages  # noqa: E402
from skface.demo._report import render_html, write_report  # noqa: E402
from skface.demo._stages import Figure, Section  # noqa: E402


def _png():
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _run(tmp_path, **kwargs):
    lines = []
    result = run_demo(tmp_path / "out", preset="smoke", verbose=0, log=lines.append, **kwargs)
    return result, lines


def test_run_demo_no_data_home_falls_back_to_bundled_sample_and_names_skipped(tmp_path):
    result, lines = _run(tmp_path, data_home=tmp_path / "empty")
    sections = result["sections"]
    # DBN and SDAE run on scikit-image's 100 LFW faces and say what is missing.
    for key in ("dbn", "sdae"):
        assert sections[key]["status"] == "ok"
        assert "missing" in sections[key]["fallback"]
    assert "utkface" in sections["sdae"]["fallback"]
    assert sections["dbn"]["metrics"]["n_train"] == 80
    # Trained enough on the sample to denoise, not just to draw the mean face.
    sdae = sections["sdae"]["metrics"]
    assert sdae["denoised_mse"] < 0.8 * sdae["noisy_mse"]
    dbn = sections["dbn"]["metrics"]
    assert dbn["test_mse"] < 0.04  # the mean training face scores 0.042 on these 20
    # Keypoints and embeddings cannot: skipped, naming the folder and where to get the data.
    for key, name in (("keypoints", "youtube_faces_keypoints"), ("embedding", "lfw_people")):
        assert sections[key]["status"] == "skipped"
        assert name in sections[key]["reason"]
        assert str(tmp_path / "empty") in sections[key]["reason"]
    assert "skface fetch lfw_people" in sections["embedding"]["reason"]
    log = "\n".join(lines)
    assert "skipped KeypointRegressor" in log and "skipped CenterLossEmbedder" in log
    # Each missing-data message once in the whole log (it was in the "skipped" line too).
    block = next(line for line in lines if line.startswith("missing data"))
    for message in block.splitlines()[1:]:
        assert log.count(message.strip()) == 1, message
    assert "bundled LFW sample" in log
    # Alignment runs on scikit-image's photos with the bundled cascade: the
    # astronaut's face is found, the cameraman (half profile) and the cat are not.
    align = sections["align"]
    assert align["status"] == "ok" and align["metrics"] == {
        "backend": "cascade", "n_images": 3, "no_face": 2}
    assert "youtube_faces_keypoints" in align["fallback"]
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.count("<img ") == 3  # contact sheet, DBN reconstructions, SDAE denoising
    assert "Skipped: the data is missing." in report


def test_run_demo_outputs_metrics_json_matching_result(tmp_path):
    result, _ = _run(tmp_path, data_home=tmp_path / "empty", stages=["dbn"])
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["sections"] == result["sections"]
    assert saved["preset"] == "smoke" and saved["settings"]["dbn_layers"] == [64, 16]
    assert set(saved["sections"]) == {"dbn"}
    png = tmp_path / "out" / "dbn_reconstructions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.realdata
def test_run_demo_real_data_smoke_every_section_ok_with_figures(tmp_path, shared_data):
    result, _ = _run(tmp_path, data_home=shared_data)
    sections = result["sections"]
    assert {k: v["status"] for k, v in sections.items()} == dict.fromkeys(
        ("align", "dbn", "sdae", "keypoints", "embedding"), "ok"
    )
    assert not any(v["fallback"] for v in sections.values())
    figures = [f for v in sections.values() for f in v["figures"]]
    assert figures == ["alignment_contact_sheet.png", "dbn_reconstructions.png", "sdae_denoising.png", "sdae_age_error.png",
                       "keypoints_test_faces.png", "embedding_roc.png"]
    for name in figures:
        assert (tmp_path / "out" / name).stat().st_size > 1000
    m = sections["embedding"]["metrics"]
    # Above chance on the balanced pairs (500 same, 500 different): measured 0.558, AUC 0.599.
    assert m["verification_accuracy"] > 0.5 and m["roc_auc"] > 0.55 and m["n_test_pairs"] == 1000
    assert sections["keypoints"]["metrics"]["n_test"] == 770
    assert np.isfinite(sections["sdae"]["metrics"]["age_mae"])
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.count("<img ") == 6
    align = sections["align"]["metrics"]
    assert align["n_images"] == 16 and align["found_fraction"] >= 0.5  # cascade: 9 of 16
    # The detection stage has a baseline too: a fixed centre box finds 14 of these 16.
    assert align["centre_box_found_fraction"] == 0.875
    assert sections["align"]["comparison"]["baseline_metric"] == "centre_box_found_fraction"
    # Every stage relates its numbers to longer runs, and the report says so.
    for key, section in sections.items():
        assert "bench/RESULTS.md" in section["reference"], key
    assert report.count("<b>Longer runs:</b>") == 5


def test_run_demo_failing_stage_reported_and_others_continue(tmp_path, monkeypatch):
    def broken(ctx):
        """A stage that breaks."""
        raise RuntimeError("out of cheese")

    sdae = dict(_stages.STAGES)["sdae"]
    monkeypatch.setattr(_stages, "STAGES", (("dbn", broken), ("sdae", sdae)))
    from skface.demo import _run as run_module

    monkeypatch.setattr(run_module, "STAGES", _stages.STAGES)
    result, lines = _run(tmp_path, data_home=tmp_path / "empty")
    assert result["sections"]["dbn"]["status"] == "failed"
    assert "out of cheese" in result["sections"]["dbn"]["reason"]
    assert result["sections"]["sdae"]["status"] == "ok"
    assert any("FAILED DBNReconstructor" in line for line in lines)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"preset": "huge"}, r"Unknown demo preset 'huge'.*quick"),
     ({"stages": ["dbn", "gan"]}, r"Unknown demo stage.*gan.*embedding"),
     ({"dbn_depth": 3}, r"Bad demo setting")],
)
def test_run_demo_bad_arguments_raise_listing_choices(tmp_path, kwargs, match):
    kwargs = {"preset": "smoke", **kwargs}
    with pytest.raises(ValueError, match=match):
        run_demo(tmp_path / "out", verbose=0, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def stages_must_not_run(monkeypatch):
    """Every stage fails the test if it runs: a bad out_dir must stop the demo first."""
    from skface.demo import _run as run_module

    def stage(ctx):
        """A stage that must not run."""
        raise AssertionError("a stage ran before the output folder was checked")

    monkeypatch.setattr(run_module, "STAGES", tuple((k, stage) for k, _ in _stages.STAGES))


@pytest.mark.parametrize("out, error", [("afile", FileExistsError),
                                        ("afile/sub/out", NotADirectoryError)],
                         ids=["file", "under_file"])
def test_run_demo_out_dir_file_in_the_way_raises_before_training(tmp_path, stages_must_not_run,
                                                                 out, error):
    # It used to train every stage, then lose the run to a NotADirectoryError.
    (tmp_path / "afile").write_text("")
    with pytest.raises(error, match=rf"output folder .*: {re.escape(str(tmp_path))}/afile is "
                                    "a file, not a folder\\. Pass another folder"):
        run_demo(tmp_path / out, preset="smoke", verbose=0)


def test_run_demo_out_dir_not_writable_raises_before_training(tmp_path, monkeypatch,
                                                              stages_must_not_run):
    import tempfile

    # Tests run as root, which writes whatever the folder's mode: refuse the probe instead.
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError, match="output folder .*out: permission denied"):
        run_demo(tmp_path / "out", preset="smoke", verbose=0)


def test_run_demo_out_dir_read_only_folder_raises_before_training(tmp_path, monkeypatch,
                                                                  stages_must_not_run):
    import stat
    import tempfile

    # An existing folder without write permission, whoever runs the tests: root (as in
    # CI) writes whatever the mode, so the probe is refused as the kernel would refuse
    # anyone else, by the folder's mode bits.
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        folder = kwargs.get("dir")
        if folder is not None and not os.stat(folder).st_mode & stat.S_IWUSR:
            raise PermissionError(13, "Permission denied", folder)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=rf"output folder {re.escape(str(out))}: "
                                                  "permission denied\\. Pass another folder"):
            run_demo(out, preset="smoke", verbose=0)
    finally:
        out.chmod(0o755)
    assert list(out.iterdir()) == []


def test_run_demo_out_dir_probe_leaves_nothing_behind(tmp_path, monkeypatch):
    from skface.demo import _run as run_module

    seen = []

    def stage(ctx):
        """A stage that looks at the output folder."""
        seen.append(sorted(p.name for p in (tmp_path / "new" / "out").iterdir()))
        raise RuntimeError("stop here")

    monkeypatch.setattr(run_module, "STAGES", (("dbn", stage),))
    run_demo(tmp_path / "new" / "out", preset="smoke", verbose=0)
    assert seen == [[]]  # created, probed and empty when the first stage starts


def test_write_report_every_figure_inlined_no_external_resources(tmp_path):
    png = _png()
    sections = [
        Section("dbn", "DBN", "DBNReconstructor", data="faces", metrics={"test_mse": 0.01,
                "pca32_test_mse": 0.005}, figures=[Figure("a", "Figure A", png, "cap <A>")],
                seconds=3.0, headline="0.0100 (held-out MSE)", baseline="0.0050 (PCA <32>)"),
        Section("keypoints", "Keypoints", "KeypointRegressor", status="skipped",
                reason="youtube_faces_keypoints: missing training/ in /x"),
    ]
    run = {"skface_version": "0", "preset": "smoke", "device": "cpu", "data_home": "/x",
           "finished": "now", "wall_seconds": 3.0, "settings": {}}
    report = write_report(tmp_path, run, sections)
    html = report.read_text()
    sources = re.findall(r"src='([^']*)'", html)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert "http" not in html.replace("name='viewport'", "")  # nothing loaded from outside
    assert "cap &lt;A&gt;" in html  # escaped
    assert "missing training/ in /x" in html and "Skipped for lack of data" in html
    # The summary table: each stage's headline and baseline, labels greyed and escaped.
    summary = render_html(run, sections).split("<section")[0]
    assert "0.0100 <span class='sub'>(held-out MSE)</span>" in summary
    assert "0.0050 <span class='sub'>(PCA &lt;32&gt;)</span>" in summary
    assert (tmp_path / "a.png").read_bytes() == png


def test_cli_demo_writes_report_and_returns_zero(tmp_path, capsys):
    out = tmp_path / "demo"
    code = cli.main(["demo", "--out", str(out), "--preset", "smoke", "--stages", "dbn",
                     "--data-home", str(tmp_path / "empty"), "--quiet"])
    assert code == 0
    assert (out / "report.html").exists() and (out / "metrics.json").exists()


def test_demo_presets_quick_smaller_than_full():
    quick, full = PRESETS["quick"], PRESETS["full"]
    assert quick.emb_epochs < full.emb_epochs and quick.kp_epochs < full.kp_epochs
    assert sum(quick.dbn_layers) < sum(full.dbn_layers)


@pytest.mark.slow
@pytest.mark.realdata
def test_run_demo_quick_real_data_finishes_under_ten_minutes(tmp_path, shared_data):
    start = time.perf_counter()
    result = run_demo(tmp_path / "out", data_home=shared_data, verbose=0)
    assert time.perf_counter() - start < 600
    assert all(v["status"] == "ok" for v in result["sections"].values())


@pytest.mark.parametrize("dbn_mse, loses", [(0.0063, True), (0.0021, False)])
def test_compare_model_against_baseline_recorded_and_said_in_words(dbn_mse, loses):
    from skface.demo._report import metrics_dict

    section = Section("dbn", "DBN", "DBNReconstructor", data="faces",
                      metrics={"test_mse": dbn_mse, "pca64_test_mse": 0.0039},
                      headline=f"{dbn_mse} (held-out MSE)", baseline="0.0039 (PCA-64)")
    _stages.compare(section, "test_mse", "pca64_test_mse", "lower", "held-out MSE", "PCA-64")
    assert section.comparison == {
        "metric": "test_mse", "baseline_metric": "pca64_test_mse", "better": "lower",
        "value": dbn_mse, "baseline_value": 0.0039, "beats_baseline": not loses,
    }
    said = [n for n in section.notes if n.startswith("Loses to its baseline")]
    assert len(said) == int(loses)
    if loses:
        assert "0.0063" in said[0] and "PCA-64" in said[0] and "lower is better" in said[0]
    run = {"skface_version": "0", "preset": "smoke", "device": "cpu", "data_home": "/d",
           "finished": "now", "wall_seconds": 1.0}
    summary = render_html(run, [section]).split("<section")[0]
    assert ("loses to this baseline" in summary) is loses
    assert metrics_dict(run, [section])["sections"]["dbn"]["comparison"] == section.comparison


def test_compare_higher_is_better_metric_beaten_no_note():
    section = Section("embedding", "E", "CenterLossEmbedder",
                      metrics={"verification_accuracy": 0.7,
                               "eigenfaces_verification_accuracy": 0.6})
    _stages.compare(section, "verification_accuracy", "eigenfaces_verification_accuracy",
                    "higher", "accuracy", "eigenfaces")
    assert section.comparison["beats_baseline"] and section.notes == []


def test_run_demo_stage_losing_to_baseline_said_on_console(tmp_path, monkeypatch):
    from skface.demo import _run

    def losing(ctx):
        """A stage whose model loses."""
        section = Section("dbn", "DBN", "DBNReconstructor", data="faces",
                          metrics={"test_mse": 0.0063, "pca64_test_mse": 0.0039})
        _stages.compare(section, "test_mse", "pca64_test_mse", "lower", "held-out MSE",
                        "PCA-64")
        return section

    monkeypatch.setattr(_run, "STAGES", (("dbn", losing),))
    lines = []
    result = run_demo(tmp_path / "out", preset="smoke", log=lines.append)
    said = [line for line in lines if line.startswith("note DBNReconstructor: Loses")]
    assert len(said) == 1 and "PCA-64" in said[0]
    assert result["sections"]["dbn"]["comparison"]["beats_baseline"] is False


def test_missing_message_names_every_missing_file_at_once(tmp_path):
    # LFW images present, pairs.txt absent: said now; YouTube: the test files too.
    faces = tmp_path / "lfw" / "lfw-deepfunneled" / "A_B"
    faces.mkdir(parents=True)
    msg = _stages._missing_message("lfw_pairs", tmp_path)
    assert "pairs.txt" in msg and "--download" in msg
    msg = _stages._missing_message("youtube_faces_keypoints", tmp_path / "none")
    for rel in ("training/", "test/", "training_frames_keypoints.csv",
                "test_frames_keypoints.csv"):
        assert rel in msg, rel


def test_run_demo_missing_datasets_listed_in_one_block_at_the_end(tmp_path, monkeypatch):
    from skface.demo import _run

    def needs(key, text):
        def stage(ctx):
            """A stage without its data."""
            return Section(key, key, key.upper(), status="skipped", reason=text)
        return stage

    monkeypatch.setattr(_run, "STAGES", (
        ("dbn", needs("dbn", "lfw_people: missing lfw-deepfunneled in /d/lfw")),
        ("embedding", needs("embedding", "lfw_people: missing lfw-deepfunneled in /d/lfw\n"
                                         "lfw_pairs: missing pairs.txt in /d/lfw")),
        ("sdae", needs("sdae", "utkface: missing UTKFace in /d/utkface")),
    ))
    lines = []
    run_demo(tmp_path / "out", preset="smoke", log=lines.append)
    blocks = [line for line in lines if line.startswith("missing data")]
    assert len(blocks) == 1
    assert blocks[0].splitlines()[1:] == [
        "  lfw_people: missing lfw-deepfunneled in /d/lfw",
        "  lfw_pairs: missing pairs.txt in /d/lfw",
        "  utkface: missing UTKFace in /d/utkface",
    ]
    assert lines.index(blocks[0]) > max(i for i, x in enumerate(lines) if x.startswith("skipped"))


def _losing_section(estimator="ConvSDAEFeatures"):
    section = Section("sdae", "SDAE", estimator, data="faces",
                      metrics={"gender_accuracy": 0.775, "pca128_gender_accuracy": 0.85,
                               "pca128_age_mae": 10.55, "test_mse": 0.01},
                      headline="0.775 (gender accuracy)", baseline="0.850 (PCA-128)")
    _stages.compare(section, "gender_accuracy", "pca128_gender_accuracy", "higher",
                    "gender accuracy", "PCA-128 + the same heads")
    return section


_RUN = {"skface_version": "0", "preset": "smoke", "device": "cpu", "data_home": "/d",
        "finished": "now", "wall_seconds": 1.0}


@pytest.mark.parametrize("loses", [True, False])
def test_report_badge_says_below_baseline_for_a_losing_model(loses):
    section = _losing_section()
    if not loses:
        section.metrics["gender_accuracy"] = 0.9
        section.notes = []
        _stages.compare(section, "gender_accuracy", "pca128_gender_accuracy", "higher",
                        "gender accuracy", "PCA-128")
    html = render_html(_RUN, [section])
    summary, body = html.split("<section", 1)
    for part in (summary, body):
        assert ("<span class='tag below'>below baseline</span>" in part) is loses
        assert ("<span class='tag ok'>ok</span>" in part) is not loses


def test_report_metrics_tables_show_words_not_keys():
    html = render_html(_RUN, [_losing_section()])
    shown = re.sub(r" title='[^']*'", "", html)  # the key stays as the row's tooltip
    for key in ("pca128_gender_accuracy", "pca128_age_mae", "gender_accuracy", "test_mse"):
        assert key not in shown, key
    for words in ("PCA-128 gender accuracy", "PCA-128 age MAE (years)", "held-out MSE"):
        assert f">{words}</th>" in shown, words
    assert "title='pca128_gender_accuracy'" in html


def test_compare_note_has_no_possessive_on_the_class_name():
    note = _losing_section().notes[0]
    assert "ConvSDAEFeatures's" not in note and "heads's" not in note  # the old wording
    assert note.startswith("Loses to its baseline: gender accuracy 0.775 for ConvSDAEFeatures, "
                           "0.85 for PCA-128 + the same heads (higher is better).")


def test_stage_references_quote_only_numbers_measured_in_bench_results():
    from pathlib import Path

    results = (Path(__file__).resolve().parents[1] / "bench" / "RESULTS.md").read_text()
    assert set(_stages._REFERENCES) == {key for key, _ in _stages.STAGES}
    for key, text in _stages._REFERENCES.items():
        for section in re.findall(r'"([^"]+)"', text):
            assert f"## {section}" in results or f"### {section}" in results, (key, section)
        for number in re.findall(r"\d+\.\d+", text):
            assert number in results, (key, number)


def test_centre_boxes_fixed_frame_of_each_image_size(tmp_path):
    from PIL import Image

    path = tmp_path / "frame.png"
    Image.new("RGB", (300, 240)).save(path)  # width 300, height 240
    box = _stages._centre_boxes([str(path)], 2.4, 0.05)
    # Side 240 / 2.4 = 100, centred at x 150, y 120 + 0.05 * 240 = 132.
    np.testing.assert_allclose(box, [[100.0, 82.0, 200.0, 182.0]])


def _sleeping_stage(ctx):
    """A stage that takes a while."""
    time.sleep(0.35)
    return Section("dbn", "DBN", "DBNReconstructor")


@pytest.mark.parametrize("terminal, verbose, beats", [(False, 1, True), (True, 1, False),
                                                      (False, 0, False)])
def test_run_demo_piped_log_hears_from_a_long_stage(tmp_path, monkeypatch, terminal, verbose,
                                                    beats):
    from skface.demo import _run

    monkeypatch.setattr(_run, "STAGES", (("dbn", _sleeping_stage),))
    monkeypatch.setattr(_run, "_HEARTBEAT_S", 0.1)
    monkeypatch.setattr(_run, "_on_terminal", lambda stream: terminal)
    lines = []
    run_demo(tmp_path / "out", preset="smoke", verbose=verbose, log=lines.append)
    heard = [line for line in lines if "still running" in line]
    if beats:
        # On a pipe or in a file (no progress bars): a line every _HEARTBEAT_S seconds.
        assert len(heard) >= 2 and heard[0].strip().startswith("[1/1] dbn: still running")
    else:
        assert heard == []
    import threading

    assert not [t for t in threading.enumerate() if t.name == "skface-demo-heartbeat"]
