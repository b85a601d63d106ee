"""Tests for skface._plugins: the entry-point discovery behind the backbone, dataset and detector registries."""

from importlib.metadata import EntryPoint

import numpy as np
import pytest

from skface import _plugins

GROUP = "skface.test_plugins"


def plugin_a():
    return "a"


def plugin_b():
    return "b"


NOT_CALLABLE = 3


@pytest.fixture
def installed(monkeypatch):
    """Replace the installed entry points by the given (name, value) pairs."""

    def install(*entries):
        eps = [EntryPoint(name, value, GROUP) for name, value in entries]
        monkeypatch.setattr(_plugins, "entry_points", lambda group: list(eps))
        _plugins.clear_cache()

    yield install
    _plugins.clear_cache()


def test_load_group_sorted_by_name_and_loaded(installed):
    installed(("b", f"{__name__}:plugin_b"), ("a", f"{__name__}:plugin_a"))
    plugins = _plugins.load_group(GROUP, kind="widget")
    assert list(plugins) == ["a", "b"]
    assert plugins["a"] is plugin_a


def test_load_group_duplicate_broken_not_callable_warn_and_are_skipped(installed):
    installed(
        ("a", f"{__name__}:plugin_a"),
        ("a", f"{__name__}:plugin_b"),
        ("broken", "skface_no_such_module:thing"),
        ("constant", f"{__name__}:NOT_CALLABLE"),
    )
    with pytest.warns(RuntimeWarning) as record:
        plugins = _plugins.load_group(GROUP, kind="widget")
    assert plugins == {"a": plugin_a}
    messages = [str(w.message) for w in record]
    assert any("widget plugin 'a'" in m and "more than once" in m for m in messages)
    assert any("'broken'" in m and "failed to load" in m for m in messages)
    assert any("'constant'" in m and "not callable" in m for m in messages)
    # The warning points at the code that asked for the plugins, not at skface.
    assert all(w.filename == __file__ for w in record)


def test_load_group_builtins_only_fill_in_undeclared_names(installed):
    installed(("a", f"{__name__}:plugin_a"))
    builtins = {"a": f"{__name__}:plugin_b", "b": f"{__name__}:plugin_b"}
    plugins = _plugins.load_group(GROUP, kind="widget", builtins=builtins)
    assert plugins == {"a": plugin_a, "b": plugin_b}


def test_load_group_cached_until_cleared(installed, monkeypatch):
    installed(("a", f"{__name__}:plugin_a"))
    calls = []
    real = _plugins.entry_points
    monkeypatch.setattr(_plugins, "entry_points", lambda group: calls.append(1) or real(group))
    _plugins.load_group(GROUP, kind="widget")
    _plugins.get_plugin(GROUP, "a", kind="widget")
    assert len(calls) == 1
    _plugins.clear_cache()
    _plugins.load_group(GROUP, kind="widget")
    assert len(calls) == 2


def test_get_plugin_unknown_name_lists_available(installed):
    installed(("a", f"{__name__}:plugin_a"), ("b", f"{__name__}:plugin_b"))
    assert _plugins.get_plugin(GROUP, "b", kind="widget") is plugin_b
    with pytest.raises(ValueError, match=r"Unknown widget 'c'\. Available widgets: a, b\. .*"
                                         r"'skface\.test_plugins' entry-point group, or else\.$"):
        _plugins.get_plugin(GROUP, "c", kind="widget", alternative=", or else")
    installed()
    with pytest.raises(ValueError, match=r"Available widgets: \(none\)"):
        _plugins.get_plugin(GROUP, "c", kind="widget")


# -- detector backends (skface.detectors) ----------------------------------------------


class ToyDetector:
    """One fixed face per image, with 5 points: a backend no string branch knows of."""

    landmarks = True

    def detect(self, images, *, min_face_size, thresholds, device):
        out = []
        for image in images:
            height, width = image.shape[:2]
            box = np.array([[width * 0.25, height * 0.25, width * 0.75, height * 0.75]])
            points = np.array([[[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.62], [0.58, 0.62]]])
            out.append((box, np.array([0.9]), points * [width, height]))
        return out


class NoDetectMethod:
    pass


class WrongCount(ToyDetector):
    def detect(self, images, **params):
        return []


def test_detector_toy_plugin_found_by_name_and_its_landmarks_aligned_on(installed):
    from skface.align import FaceAligner, FaceDetector, list_detectors

    installed(("toy", f"{__name__}:ToyDetector"))
    assert list_detectors() == ["cascade", "mtcnn", "tiny_face", "toy"]  # the built-ins stay
    image = np.zeros((40, 60, 3), np.uint8)
    [faces] = FaceDetector("toy").fit().detect([image])
    np.testing.assert_array_equal(faces.boxes, [[15, 10, 45, 30]])
    assert faces.scores.tolist() == pytest.approx([0.9]) and faces.landmarks.shape == (1, 5, 2)
    aligner = FaceAligner(FaceDetector("toy"), size=16).fit()
    assert aligner.landmarks_ == "detector"  # landmarks=True: its 5 points, not the box
    np.testing.assert_allclose(aligner.align([image]).landmarks[0], faces.landmarks[0])


def test_detector_broken_plugin_warns_naming_itself_others_still_work(installed):
    from skface.align import FaceDetector

    installed(("broken", "skface_no_such_module:Detector"), ("toy", f"{__name__}:ToyDetector"))
    with pytest.warns(RuntimeWarning, match=r"skface detector plugin 'broken' "
                                            r"\(skface_no_such_module:Detector\) failed to load"):
        FaceDetector("toy").fit()
    with pytest.raises(ValueError, match=r"Unknown detector 'broken'\. Available detectors: "
                                         r"cascade, mtcnn, tiny_face, toy\. Third-party detectors "
                                         r"register under the 'skface\.detectors' entry-point group"):
        FaceDetector("broken").fit()


def test_detector_plugin_without_detect_or_wrong_output_named_in_error(installed):
    from skface.align import FaceDetector

    installed(("nodetect", f"{__name__}:NoDetectMethod"), ("short", f"{__name__}:WrongCount"))
    with pytest.raises(TypeError, match=r"plugin 'nodetect' .*NoDetectMethod\) made a "
                                        r"NoDetectMethod with no detect method"):
        FaceDetector("nodetect").fit()
    with pytest.raises(ValueError, match=r"detector 'short' returned 0 detection\(s\) for 1 image"):
        FaceDetector("short").fit().detect([np.zeros((20, 20, 3), np.uint8)])
