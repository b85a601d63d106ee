"""The demo's outputs: a self-contained HTML report, ``metrics.json`` and the PNG figures."""

import base64
import html
import json
import re

__all__ = ["write_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { margin: 0 0 4px; font-size: 28px; }
h2 { margin: 0 0 6px; font-size: 21px; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #3a4356; }
.sub { color: #5b6475; margin: 0 0 20px; }
section, .summary { background: #fff; border: 1px solid #dde1e8; border-radius: 8px;
                    padding: 18px 22px; margin: 18px 0; }
table { border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 5px 14px 5px 0; border-bottom: 1px solid #edf0f4;
         vertical-align: top; }
th { color: #5b6475; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
.tag { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px;
       border-radius: 10px; margin-left: 8px; vertical-align: middle; }
.ok { background: #dff3e4; color: #1d6b34; }
.skipped { background: #fff1cc; color: #7a5700; }
.failed { background: #fde0e0; color: #9b1c1c; }
.below { background: #ffe6cc; color: #8a4200; }
.ref { font-size: 13px; color: #3a4356; }
.box { border-radius: 6px; padding: 10px 14px; margin: 10px 0; font-size: 14px;
       white-space: pre-wrap; }
.box.skipped { border: 1px solid #f0d58a; }
.box.failed { border: 1px solid #f2a9a9; font-family: monospace; }
figure { margin: 14px 0; }
figure img { max-width: 100%; border: 1px solid #edf0f4; }
figcaption { font-size: 13px; color: #5b6475; margin-top: 4px; }
.notes { font-size: 13px; color: #3a4356; }
code { background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
"""


# The metrics' names in metrics.json are keys for programs; the report shows these.
_LABELS = {
    "backend": "detector backend",
    "n_images": "images",
    "found_fraction": "faces found (IoU >= 0.5)",
    "centre_box_found_fraction": "faces found by a fixed centre box (IoU >= 0.5)",
    "no_face": "images without a face",
    "images_per_second": "images per second",
    "n_train": "training images",
    "n_test": "test images",
    "n_test_pairs": "test pairs",
    "n_features": "features per face",
    "layers": "layer sizes",
    "test_mse": "held-out MSE",
    "noisy_mse": "MSE of the noisy input",
    "denoised_mse": "MSE after denoising",
    "gender_accuracy": "gender accuracy",
    "age_mae": "age MAE (years)",
    "test_rmse": "test RMSE (px)",
    "mean_shape_rmse": "mean shape's test RMSE (px)",
    "worst_keypoints": "worst keypoints (indices)",
    "verification_accuracy": "verification accuracy",
    "verification_accuracy_std": "verification accuracy, std over folds",
    "roc_auc": "ROC AUC",
    "eigenfaces_verification_accuracy": "eigenfaces' verification accuracy",
    "eigenfaces_roc_auc": "eigenfaces' ROC AUC",
    "fit_seconds": "fit time (s)",
}
_PCA_KEY = re.compile(r"pca(\d+)_(.+)")


def metric_label(key):
    """The words the report shows for a metric's key (``pca64_test_mse``: "PCA-64 held-out MSE")."""
    if key in _LABELS:
        return _LABELS[key]
    match = _PCA_KEY.fullmatch(key)
    if match:
        return f"PCA-{match[1]} {metric_label(match[2])}"
    return key.replace("_", " ")


def _badge(section):
    """``(css class, words)`` of a section's status tag: "below baseline" for a model that loses."""
    if section.status == "ok" and section.comparison and not section.comparison["beats_baseline"]:
        return "below", "below baseline"
    return section.status, section.status


def _fmt_value(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _summary_cell(text):
    """``"value (what)"`` as the value with its label greyed."""
    value, _, label = text.partition(" (")
    if not label:
        return html.escape(value)
    return f"{html.escape(value)} <span class='sub'>({html.escape(label)}</span>"


def _section_html(section):
    esc = html.escape
    tag, words = _badge(section)
    parts = [f"<section id='{esc(section.key)}'>",
             f"<h2>{esc(section.title)}<span class='tag {tag}'>{esc(words)}</span></h2>",
             f"<p class='sub'><code>{esc(section.estimator)}</code>"
             + (f" &middot; {esc(section.data)}" if section.data else "") + "</p>"]
    if section.status != "ok":
        label = "Skipped: the data is missing." if section.status == "skipped" else "Failed:"
        parts.append(f"<div class='box {section.status}'><b>{label}</b>\n"
                     f"{esc(section.reason)}</div>")
    if section.fallback:
        parts.append("<div class='box skipped'><b>Ran on scikit-image's bundled sample of "
                     f"100 LFW faces</b>, because the data home lacks its dataset.\n"
                     f"{esc(section.fallback)}</div>")
    if section.metrics:
        rows = "".join(
            f"<tr><th title='{esc(k)}'>{esc(metric_label(k))}</th>"
            f"<td class='num'>{esc(_fmt_value(v))}</td></tr>"
            for k, v in section.metrics.items()
        )
        parts.append(f"<h3>Metrics</h3><table>{rows}</table>")
    for fig in section.figures:
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(
            f"<figure><h3>{esc(fig.title)}</h3>"
            f"<img alt='{esc(fig.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
        )
    if section.notes:
        notes = "".join(f"<li>{esc(n)}</li>" for n in section.notes)
        parts.append(f"<ul class='notes'>{notes}</ul>")
    if section.reference and section.status == "ok":
        parts.append(f"<p class='ref'><b>Longer runs:</b> {esc(section.reference)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _loses_cell(section):
    """A remark in words under a baseline that the model did not beat."""
    if section.comparison and not section.comparison["beats_baseline"]:
        return ("<br><b>the model loses to this baseline</b> "
                f"({html.escape(section.comparison['better'])} is better)")
    return ""


def _summary_html(run, sections):
    esc = html.escape
    rows = []
    for s in sections:
        tag, words = _badge(s)
        rows.append(
            f"<tr><td><a href='#{esc(s.key)}'><code>{esc(s.estimator)}</code></a></td>"
            f"<td><span class='tag {tag}'>{esc(words)}</span></td>"
            f"<td class='num'>{_summary_cell(s.headline)}</td>"
            f"<td class='num'>{_summary_cell(s.baseline)}"
            f"{_loses_cell(s)}</td>"
            f"<td class='num'>{f'{s.seconds:.0f} s' if s.status == 'ok' else ''}</td></tr>"
        )
    skipped = [s for s in sections if s.status == "skipped"]
    note = ""
    if skipped:
        names = ", ".join(s.estimator for s in skipped)
        note = (f"<p><b>Skipped for lack of data:</b> {esc(names)}. Each section below says "
                "which files are missing and where to get them.</p>")
    return (
        "<div class='summary'><h2>Summary</h2>"
        "<table><tr><th>estimator</th><th>status</th><th>result</th><th>baseline</th>"
        f"<th>train time</th></tr>{''.join(rows)}</table>{note}"
        f"<p class='sub'>Data home: <code>{esc(str(run['data_home']))}</code> &middot; "
        f"preset <code>{esc(run['preset'])}</code> &middot; device <code>"
        f"{esc(run['device'])}</code> &middot; total {run['wall_seconds']:.0f} s</p></div>"
    )


def render_html(run, sections):
    """The report as one HTML string: figures inlined, no external resources."""
    body = "\n".join(_section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>skface demo report</title><style>{_CSS}</style></head><body><main>"
        f"<h1>skface demo</h1><p class='sub'>skface {html.escape(run['skface_version'])} "
        f"&middot; {html.escape(run['finished'])} &middot; "
        "four face models trained briefly as scikit-learn estimators, and what they learned."
        f"</p>{_summary_html(run, sections)}{body}</main></body></html>\n"
    )


def metrics_dict(run, sections):
    """Everything measured, JSON-ready: the run's settings and each section's metrics."""
    return {
        **run,
        "sections": {
            s.key: {
                "estimator": s.estimator,
                "status": s.status,
                "data": s.data,
                "reason": s.reason,
                "fallback": s.fallback,
                "seconds": round(s.seconds, 2),
                "headline": s.headline,
                "baseline": s.baseline,
                "comparison": s.comparison,
                "metrics": s.metrics,
                "figures": [f"{f.name}.png" for f in s.figures],
                "notes": s.notes,
                "reference": s.reference,
            }
            for s in sections
        },
    }


def write_report(out_dir, run, sections):
    """Write ``report.html``, ``metrics.json`` and one PNG per figure into ``out_dir``.

    Returns
    -------
    report : pathlib.Path
        The HTML report's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for fig in section.figures:
            (out_dir / f"{fig.name}.png").write_bytes(fig.png)
    (out_dir / "metrics.json").write_text(
        json.dumps(metrics_dict(run, sections), indent=2) + "\n", encoding="utf-8"
    )
    report = out_dir / "report.html"
    report.write_text(render_html(run, sections), encoding="utf-8")
    return report
