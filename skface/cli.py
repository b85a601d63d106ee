"""Command line: ``skface demo``, ``datasets``, ``fetch NAME``, ``models`` and ``train RECIPE``."""

import argparse
import sys


def _human(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def _cmd_datasets(args):
    from skface.datasets import get_data_home, get_dataset_info, list_datasets

    home = get_data_home(args.data_home)
    print(f"data home: {home}")
    rows = []
    for name in list_datasets():
        info = get_dataset_info(name)
        if info is None:  # a third-party plugin that did not describe itself
            rows.append((name, "?", "?", ""))
            continue
        present = info.is_present(home)
        size = _human(info.size_on_disk(home)) if present else "-"
        rows.append((name, "yes" if present else "no", size, info.citation))
    width = max(len(r[0]) for r in rows) if rows else 4
    print(f"{'name':<{width}}  present  {'size':>9}  citation")
    for name, present, size, citation in rows:
        cite = citation if args.full or len(citation) <= 70 else citation[:67] + "..."
        print(f"{name:<{width}}  {present:<7}  {size:>9}  {cite}")
    return 0


def _cmd_fetch(args):
    from skface.datasets import fetch

    bunch = fetch(args.name, data_home=args.data_home)
    shapes = {
        key: getattr(value, "shape", None)
        for key, value in bunch.items()
        if getattr(value, "shape", None) is not None
    }
    for key, shape in shapes.items():
        print(f"{key}: {shape}")
    return 0


def _cmd_models(args):
    from skface.models import cached_path, get_model_cache, get_model_info, list_models

    print(f"model cache: {get_model_cache()}")
    rows = []
    for name in list_models():
        source = get_model_info(name)
        if source.is_local:
            cached = "local"  # used where it is, never copied into the cache
        else:
            cached = "yes" if cached_path(name).is_file() else "no"
        rows.append((name, source.location, source.sha256[:12], cached, source.description))
    if not rows:
        print("no models registered: packages add theirs under the 'skface.models' "
              "entry-point group.")
        return 0
    name_w = max(4, *(len(r[0]) for r in rows))
    source_w = max(6, *(len(r[1]) for r in rows))
    print(f"{'name':<{name_w}}  {'source':<{source_w}}  {'sha256':<12}  cached  description")
    for name, location, sha, cached, description in rows:
        text = description if args.full or len(description) <= 60 else description[:57] + "..."
        print(f"{name:<{name_w}}  {location:<{source_w}}  {sha:<12}  {cached:<6}  {text}")
    return 0


def _cmd_demo(args):
    import matplotlib

    matplotlib.use("Agg")  # the figures go into the report, never to a window
    from skface.demo import run_demo

    result = run_demo(
        args.out, data_home=args.data_home, preset=args.preset, device=args.device,
        download=args.download, stages=args.stages, verbose=0 if args.quiet else 1,
    )
    failed = [s for s, v in result["sections"].items() if v["status"] == "failed"]
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skface", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-home", default=None, help="data home (default: $SKFACE_DATA or ~/skface_data)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo", parents=[common],
        help="train each estimator briefly and write an HTML report (report.html, metrics.json)",
    )
    p.add_argument("--out", default="skface-demo", help="output folder (default: skface-demo)")
    p.add_argument(
        "--preset", default="quick", choices=("quick", "smoke", "full"),
        help="quick: under 10 minutes on 2 CPU cores (default); smoke: seconds; full: for a GPU",
    )
    p.add_argument("--device", default="auto", help="torch device (default: auto, CUDA if present)")
    p.add_argument("--download", action="store_true",
                   help="download missing datasets that can be downloaded (LFW)")
    p.add_argument("--stages", nargs="+", metavar="STAGE",
                   choices=("dbn", "sdae", "keypoints", "embedding"),
                   help="run only these stages (dbn sdae keypoints embedding)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("datasets", parents=[common], help="list every registered dataset")
    p.add_argument("--full", action="store_true", help="print whole citations")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser(
        "fetch", parents=[common], help="fetch one dataset into the cache and print its shapes"
    )
    p.add_argument("name")
    p.set_defaults(func=_cmd_fetch)
    p = sub.add_parser(
        "models", help="list every registered trained model (source, sha256, cached or not)"
    )
    p.add_argument("--full", action="store_true", help="print whole descriptions")
    p.set_defaults(func=_cmd_models)
    from skface import train  # light: the recipes import their estimators only to train

    train.build_parser(sub.add_parser(
        "train", help="fit a named recipe on its dataset and write a model file"
    ))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"skface: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
