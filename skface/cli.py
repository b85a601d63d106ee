"""Command line: ``skface demo``, ``skface datasets`` and ``skface fetch NAME``."""

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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"skface: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
