"""Command line: ``skface demo``, ``datasets``, ``fetch NAME``, ``models``, ``train``, ``embed``.

Every command turns a failure the user can fix (a missing, unreadable or damaged file,
a failed download, an unknown name, a bad value) into one line on stderr,
``skface <command>: error: ...``, and exit status 2. ``--traceback`` (before or after
the command) or ``SKFACE_TRACEBACK=1`` prints the full trace as well. Any other
exception is a bug and keeps its traceback.
"""

import argparse
import os
import sys

from ._command import (  # noqa: F401 (re-exported: skface.cli's documented names)
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_STAGES_FAILED,
    EXIT_UNEXPECTED_EXIT,
    TRACEBACK_ENV,
    error_message,
    expected_errors,
    run_command,
    traceback_wanted,
)


def _human(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def _check_data_home(home):
    """Refuse a data home that exists and is not a folder (a typo naming a file)."""
    if os.path.exists(home) and not os.path.isdir(home):
        raise NotADirectoryError(
            f"the data home {home} is a file, not a folder: pass --data-home (or set "
            "SKFACE_DATA to) the folder that holds the datasets, or one to create."
        )
    return home


def _cmd_datasets(args):
    from skface.datasets import get_data_home, get_dataset_info, list_datasets

    home = _check_data_home(get_data_home(args.data_home))
    print(f"data home: {home}")
    names = list_datasets()
    infos = {name: get_dataset_info(name) for name in names}
    rows, unreadable, present = {}, [], {}
    for name in names:
        info = infos[name]
        if info is None:  # a third-party plugin that did not describe itself
            rows[name] = [name, "?", "?", ""]
            continue
        try:
            present[name] = info.is_present(home)
        except OSError as exc:
            # One folder this user may not read must not hide the other datasets.
            rows[name] = [name, "unreadable", "-", info.citation]
            unreadable.append((name, exc))
            continue
        rows[name] = [name, "yes" if present[name] else "no", "-", info.citation]
    # Datasets that share a folder (LFW's three) share its bytes: the size is shown
    # once, on the present one that needs the fewest files, and the others say whose.
    by_folder = {}
    for name, is_present in present.items():
        if is_present:
            by_folder.setdefault(_folder_key(infos[name].path(home)), []).append(name)
    total = 0
    for folder_names in by_folder.values():
        owner = min(folder_names, key=lambda n: (len(infos[n].required), n))
        nbytes = infos[owner].size_on_disk(home)  # skips what it cannot read
        total += nbytes
        rows[owner][2] = _human(nbytes)
        for name in folder_names:
            if name != owner:
                rows[name][2] = f"shared with {owner}"
    rows = list(rows.values())
    width = max(len(r[0]) for r in rows) if rows else 4
    present_w = max([7] + [len(r[1]) for r in rows])
    size_w = max([9] + [len(r[2]) for r in rows])
    print(f"{'name':<{width}}  {'present':<{present_w}}  {'size':>{size_w}}  citation")
    for name, is_present, size, citation in rows:
        cite = citation if args.full or len(citation) <= 70 else citation[:67] + "..."
        print(f"{name:<{width}}  {is_present:<{present_w}}  {size:>{size_w}}  {cite}")
    n_folders = len(by_folder)
    print(f"total: {_human(total)} on disk in {n_folders} dataset folder"
          f"{'' if n_folders == 1 else 's'} (a folder shared by several datasets "
          "counted once)")
    for name, exc in unreadable:
        print(f"skface datasets: warning: cannot read {name}'s folder: {error_message(exc)}. "
              "Check its permissions, or point --data-home elsewhere.", file=sys.stderr)
    return 0


def _folder_key(path):
    """The same key for two dataset folders that are one (same path, or a link to it)."""
    return os.path.realpath(path)


def _cmd_fetch(args):
    from skface.datasets import fetch, get_data_home, get_dataset_info

    info = get_dataset_info(args.name)  # an unknown name fails here, listing the known ones
    _check_data_home(get_data_home(args.data_home))
    kwargs = {} if info is None else {"download_if_missing": args.download}
    try:
        bunch = fetch(args.name, data_home=args.data_home, **kwargs)
    except FileNotFoundError as exc:
        # Downloading is explicit: without --download a missing dataset says how to get it.
        if args.download or info is None or not info.downloadable:
            raise
        if info.is_present(args.data_home):
            raise  # present, yet a file it reads is missing: the fetcher's message says which
        raise FileNotFoundError(
            f"{error_message(exc)} To download it, run again with --download: "
            f"'skface fetch {args.name} --download'."
        ) from exc
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
    if failed:
        # Said even with --quiet: the exit status alone does not tell which stage broke.
        print(f"skface demo: {len(failed)} of {len(result['sections'])} stages failed "
              f"({', '.join(failed)}); the report shows their errors: {result['report']}",
              file=sys.stderr)
        return EXIT_STAGES_FAILED
    return 0


def _cmd_embed(args):
    from skface.parallel._embed import (
        MissingExtraError,
        collect_image_files,
        embed_files_to_parquet,
    )

    try:
        return _run_embed(args, collect_image_files, embed_files_to_parquet)
    except MissingExtraError as exc:
        # Not one of run_command's expected errors, but as fixable: one line, same form.
        if traceback_wanted(args):
            import traceback

            traceback.print_exc()
        print(f"skface embed: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _run_embed(args, collect_image_files, embed_files_to_parquet):
    import contextlib

    from skface.parallel._embed import _prepare, _require, check_box, check_box_inside, check_output

    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}.")
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be positive, got {args.chunk_size}.")
    if args.scheduler and args.workers is not None:
        raise ValueError("--workers starts a local cluster; it cannot go with --scheduler.")
    # Every input is checked before a cluster starts or a model is read: a typo fails
    # in a second. The model read here is kept (per process) for the in-process run.
    check_output(args.out)
    box = check_box(args.box)
    files = collect_image_files(args.images)
    if box is not None:
        check_box_inside(box, files[0])
    _prepare(args.model, args.method, args.device)
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler or args.workers != 0:
            distributed = _require("distributed", "skface embed with Dask workers")
            _require("pyarrow", "skface embed")
            if args.scheduler:
                client = stack.enter_context(distributed.Client(args.scheduler, timeout="30s"))
            else:
                import logging

                from skface.parallel._threads import available_cpus

                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=args.workers or available_cpus(), threads_per_worker=1,
                    processes=True, host="127.0.0.1", dashboard_address=None,
                    silence_logs=logging.ERROR,
                ))
                client = stack.enter_context(distributed.Client(cluster))
        out = embed_files_to_parquet(
            args.model, files, args.out, client=client, chunk_size=args.chunk_size,
            method=args.method, box=args.box, device=args.device, progress=not args.quiet,
        )
    if not args.quiet:
        print(f"skface embed: {len(files)} images -> {out}")
    return 0


def _traceback_option(parser, default):
    parser.add_argument(
        "--traceback", action="store_true", default=default,
        help=f"on an error, print the full traceback too (or set {TRACEBACK_ENV}=1)",
    )


def build_parser():
    """The ``skface`` argument parser, every subcommand included."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="skface", description=_plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skface {__version__}")
    _traceback_option(parser, default=False)
    # The subcommands take --traceback too; SUPPRESS keeps a subcommand that was not
    # given it from resetting the value given before the subcommand.
    anywhere = argparse.ArgumentParser(add_help=False)
    _traceback_option(anywhere, default=argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False, parents=[anywhere])
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
                   choices=("align", "dbn", "sdae", "keypoints", "embedding"),
                   help="run only these stages (align dbn sdae keypoints embedding)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("datasets", parents=[common], help="list every registered dataset")
    p.add_argument("--full", action="store_true", help="print whole citations")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser(
        "fetch", parents=[common], help="fetch one dataset into the cache and print its shapes",
        description="Load one dataset from the data home (decoding it into the cache) and "
        "print its arrays' shapes. Nothing is downloaded without --download.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _lazy_epilog(p, _fetch_epilog)  # the registry is read only when help is asked for
    p.add_argument("name", metavar="NAME", help="a registered dataset (listed below)")
    p.add_argument("--download", action="store_true",
                   help="download a missing dataset that can be downloaded (each file is "
                        "announced with its URL and destination); without it a missing "
                        "dataset is an error saying what to do")
    p.set_defaults(func=_cmd_fetch)
    p = sub.add_parser(
        "models", parents=[anywhere],
        help="list every registered trained model (source, sha256, cached or not)",
    )
    p.add_argument("--full", action="store_true", help="print whole descriptions")
    p.set_defaults(func=_cmd_models)
    p = sub.add_parser(
        "embed", parents=[anywhere],
        help="apply a saved model to many image files on Dask workers; write a Parquet table",
        description="Apply a saved model (transform, predict or predict_proba) to image files, "
        "chunk by chunk on Dask workers, and write a Parquet table: a 'file' column, then "
        "e0.. (embeddings), p0.. (probabilities) or 'prediction', in input order. Images are "
        "decoded to the model's fitted image_shape_ (crop to --box, resize, grey or RGB).",
    )
    p.add_argument("model", metavar="MODEL",
                   help="a model file written by est.save, or a registered model name")
    p.add_argument("images", metavar="IMAGES", nargs="+",
                   help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--out", default="embeddings.parquet",
                   help="Parquet file to write (default: embeddings.parquet)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="a running Dask scheduler (tcp://host:8786); default: a local cluster")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local single-thread worker processes (default: the cores available); "
                        "0 runs in this process, without Dask")
    p.add_argument("--chunk-size", type=int, default=1024, metavar="N",
                   help="images per task (default: 1024)")
    p.add_argument("--method", default="transform",
                   choices=("transform", "predict", "predict_proba"),
                   help="what to compute (default: transform)")
    p.add_argument("--box", type=int, nargs=4, default=None,
                   metavar=("LEFT", "UPPER", "RIGHT", "LOWER"),
                   help="crop each image to this box before resizing, as the fetchers do "
                        "(fetch_lfw_people: 78 70 172 195); a box less than half inside an "
                        "image is refused; default: the whole image")
    p.add_argument("--device", default="auto",
                   help="torch device on the workers (default: auto, CUDA if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_embed)
    from .train import build_parser as train_parser  # light: recipes import torch only to train

    train_parser(sub.add_parser(
        "train", parents=[anywhere],
        help="fit a named recipe on its dataset and write a model file",
    ))
    return parser


def main(argv=None):
    """``skface``: parse ``argv`` (default: ``sys.argv[1:]``), run the command.

    Returns
    -------
    status : int
        0 on success; 1 when some demo stages failed; 2 after an error the
        user can fix (one line on stderr) or a usage error; 130 after Ctrl-C.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse reports a subcommand's unknown options with the top-level usage;
        # the subcommand's own usage says what it takes.
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return run_command(args.func, args, f"skface {args.command}")


def _lazy_epilog(parser, make):
    format_help = parser.format_help

    def with_epilog():
        parser.epilog = make()
        return format_help()

    parser.format_help = with_epilog


def _fetch_epilog():
    """The datasets, which ``--download`` can get and which need manual steps."""
    try:
        from skface.datasets import get_dataset_info, list_datasets

        names = list_datasets()
        kinds = {n: getattr(get_dataset_info(n), "downloadable", None) for n in names}
    except Exception:  # pragma: no cover (help must print whatever a plugin does)
        return ""
    auto = [n for n in names if kinds[n]]
    manual = [n for n in names if kinds[n] is False]
    other = [n for n in names if kinds[n] is None]
    lines = ["datasets:", f"  downloadable with --download: {', '.join(auto) or '-'}",
             f"  files put in the data home by hand: {', '.join(manual) or '-'}"]
    if other:
        lines.append(f"  described by their plugin: {', '.join(other)}")
    lines.append("'skface datasets' shows which are present.")
    return "\n".join(lines)


def _plain(text):
    """Help text without reStructuredText's double backticks."""
    return text.replace("``", "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
