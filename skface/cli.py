"""The ``skface`` command line: demo, datasets, fetch, models, train, info, cache, embed.

Every command turns a failure the user can fix (a missing, unreadable or damaged file,
a failed download, an unknown name, a bad value) into one line on stderr,
``skface <command>: error: ...``, and exit status 2. ``--traceback`` (before or after
the command) or ``SKFACE_TRACEBACK=1`` prints the full trace as well. Any other
exception is a bug and keeps its traceback.
"""

import argparse
import os
import sys

from ._command import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_STAGES_FAILED,
    EXIT_UNEXPECTED_EXIT,
    TRACEBACK_ENV,
    describe_lines,
    error_message,
    expected_errors,
    human_size,
    run_command,
    traceback_wanted,
)

# The exit statuses and error helpers live in skface._command (train uses them too);
# re-exported here, where commands and tests have always found them.
__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_STAGES_FAILED", "EXIT_UNEXPECTED_EXIT",
           "TRACEBACK_ENV", "build_parser", "error_message", "expected_errors", "main",
           "run_command"]


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
        rows[owner][2] = human_size(nbytes)
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
    print(f"total: {human_size(total)} on disk in {n_folders} dataset folder"
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
    rows, details = [], []
    for name in list_models():
        source = get_model_info(name)
        if source.is_local:
            cached = "local"  # used where it is, never copied into the cache
        else:
            cached = "yes" if cached_path(name).is_file() else "no"
        pin = "built" if source.is_built else source.sha256[:12]
        rows.append((name, source.location, pin, cached, source.description))
        lines = [(label, getattr(source, field)) for label, field in (
            ("input", "input"), ("output", "output"), ("licence", "license"),
            ("source", "homepage"), ("cite", "citation"))]
        details.append((name, [(label, text) for label, text in lines if text]))
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
    # Built models are converted at first use (sha256 "built"): their weights' provenance
    # is what a user must know before using them.
    for name, lines in details:
        if lines:
            print(f"\n{name}")
            for label, text in lines:
                shown = text if args.full or len(text) <= 100 else text[:97] + "..."
                print(f"  {label + ':':<9}{shown}")
    return 0


def _tree_size(path):
    """Bytes and files under ``path`` (links not followed; what cannot be read is skipped)."""
    total = files = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def _is_scratch(name):
    # An entry being written or removed (skface.datasets._cache), or left by a killed process.
    return name.startswith(".") and (".tmp-" in name or ".trash-" in name)


def _is_dataset_cache(folder):
    """Whether ``folder`` holds only decoded-array entries (each with its manifest.json)."""
    from skface.datasets._cache import MANIFEST

    try:
        with os.scandir(folder) as entries:
            return all(
                _is_scratch(e.name) if e.name.startswith(".")
                else e.is_dir(follow_symlinks=False) and os.path.isfile(
                    os.path.join(e.path, MANIFEST))
                for e in entries
            )
    except OSError:
        return False


def _cache_entries(root):
    """skface's entries in the cache, ``[(kind, name, path)]``, and the other names there.

    A folder of the cache is a dataset's only when it holds nothing but
    decoded-array entries: ``--clear`` never removes what skface did not
    write (``$SKFACE_CACHE`` may name a folder that holds other things).
    """
    entries, other = [], []
    try:
        children = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return entries, other
    for child in children:
        if child.name == "models" and child.is_dir(follow_symlinks=False):
            for model in sorted(os.scandir(child.path), key=lambda e: e.name):
                if not _is_scratch(model.name):
                    entries.append(("model", model.name, model.path))
        elif child.is_dir(follow_symlinks=False) and not child.name.startswith(".") \
                and _is_dataset_cache(child.path):
            entries.append(("dataset", child.name, child.path))
        else:
            other.append(child.name)
    entries.sort(key=lambda e: (e[0] != "dataset", e[1]))  # datasets, then models
    return entries, other


def _remove(path):
    """Delete a cache entry: renamed aside first, so that no reader finds it half deleted."""
    import shutil
    import uuid

    path = os.fspath(path)
    trash = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.trash-"
                                                f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(path, trash)
    if os.path.isdir(trash) and not os.path.islink(trash):
        shutil.rmtree(trash)
    else:
        os.unlink(trash)


def _cmd_cache(args):
    from skface.datasets import get_cache_home

    root = get_cache_home(args.cache_home)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"the cache {root} is a file, not a folder: set SKFACE_CACHE "
                                 "(or --cache-home) to a folder.")
    print(f"cache: {root}")
    entries, other = _cache_entries(root)
    if args.clear is not None:
        return _clear_cache(root, entries, args.clear)
    if not entries:
        print("empty: nothing decoded or downloaded yet.")
    else:
        rows = []
        for kind, name, path in entries:
            nbytes, files = _tree_size(path)
            if kind == "dataset":
                n = sum(1 for e in os.scandir(path) if not e.name.startswith("."))
                what = f"{n} decoded version{'' if n == 1 else 's'}"
            else:
                what = f"{files} file{'' if files == 1 else 's'}"
            rows.append((kind, name, nbytes, what))
        name_w = max(4, *(len(r[1]) for r in rows))
        print(f"{'kind':<7}  {'name':<{name_w}}  {'size':>9}  contents")
        for kind, name, nbytes, what in rows:
            print(f"{kind:<7}  {name:<{name_w}}  {human_size(nbytes):>9}  {what}")
        print(f"total: {human_size(sum(r[2] for r in rows))} in {len(rows)} entr"
              f"{'y' if len(rows) == 1 else 'ies'}; 'skface cache --clear [NAME ...]' removes "
              "them (datasets are decoded again from the data home, models downloaded again, "
              "when next used)")
    if other:
        print(f"not skface's, never cleared: {', '.join(other)}")
    return 0


def _clear_cache(root, entries, names):
    """Remove every entry (no names) or the named ones; an unknown name removes nothing."""
    by_name = {}
    for kind, name, path in entries:
        by_name.setdefault(name, []).append(path)
        if kind == "model":
            by_name.setdefault(f"models/{name}", []).append(path)
            by_name.setdefault("models", []).append(path)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = sorted({name for _, name, _ in entries})
        raise ValueError(
            f"nothing called {', '.join(map(repr, unknown))} in the cache {root}; it holds: "
            f"{', '.join(known) or '(nothing)'} ('models' for every model). Nothing was removed."
        )
    paths = [p for _, _, p in entries] if not names else \
        list(dict.fromkeys(p for n in names for p in by_name[n]))
    freed = 0
    for path in paths:
        nbytes, _ = _tree_size(path)
        _remove(path)
        freed += nbytes
        print(f"removed {os.path.relpath(path, root)} ({human_size(nbytes)})")
    print(f"freed {human_size(freed)}")
    return 0


def _cmd_demo(args):
    import matplotlib

    matplotlib.use("Agg")  # the figures go into the report, never to a window
    from skface.demo import run_demo

    result = run_demo(
        args.out, data_home=args.data_home, preset=args.preset, device=args.device,
        download=args.download, stages=args.stages, verbose=0 if args.quiet else 1,
    )
    if args.quiet:
        print(result["report"])  # the one thing --quiet still says: where the report is
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
    _check_embed_method(args.model, args.method, args.device)  # before any image is listed
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


def _check_embed_method(model, method, device):
    """Refuse a model without ``method``, saying which ``--method`` it has.

    The model is loaded here (once per process: the run reuses it), before
    the images are listed, so that a wrong method fails in a second, not
    after a folder of many files has been searched.
    """
    from skface.parallel._embed import METHODS, load_cached

    estimator = load_cached(model, device)
    if method in METHODS and hasattr(estimator, method):
        return
    name = type(estimator).__name__
    has = [m for m in METHODS if hasattr(estimator, m)]
    if not has:
        raise ValueError(f"{name} has none of the methods skface embed applies "
                         f"({', '.join(METHODS)}).")
    raise ValueError(
        f"{name} has no {method} method; it has {' and '.join(has)}: run again with "
        f"--method {has[0]}."
    )


def _cmd_info(args):
    import json

    from skface._persist import describe

    description = describe(_model_file(args.model))
    if args.json:
        print(json.dumps(description, indent=1))
    else:
        print("\n".join(describe_lines(description)))
    return 0


def _model_file(model):
    """A model file's path: ``model`` itself, or a registered model's file once downloaded."""
    from skface.models import cached_path, list_models

    if os.path.isfile(model) or model not in list_models():
        return model  # describe() says when there is no such file
    path = cached_path(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"{model} is a registered model not downloaded yet (it would be at {path}); "
            f"skface.load({model!r}) downloads it."
        )
    return path


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
        "info", parents=[anywhere],
        help="what a model file holds and expects (class, input shape, channels, training, "
             "versions), read from its header without loading it",
    )
    p.add_argument("model", metavar="FILE",
                   help="a model file (or a registered model's name, once downloaded)")
    p.add_argument("--json", action="store_true", help="print skface._persist.describe's dict")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser(
        "cache", parents=[anywhere],
        help="size of each dataset's decoded arrays and each model in the cache; --clear",
        description="List what the cache holds ($SKFACE_CACHE, else $XDG_CACHE_HOME/skface, "
        "else ~/.cache/skface): each dataset's decoded arrays (one version per size, colour "
        "or subset fetched) and each downloaded model, with sizes and the total. --clear "
        "removes them, without asking.",
    )
    p.add_argument("--clear", nargs="*", metavar="NAME", default=None,
                   help="remove every entry, or only those named (a dataset, a model, "
                        "'models' for every model); nothing else in the folder is touched")
    p.add_argument("--cache-home", default=None,
                   help="the cache (default: $SKFACE_CACHE, else ~/.cache/skface)")
    p.set_defaults(func=_cmd_cache)
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
