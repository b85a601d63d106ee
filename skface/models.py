"""Trained-model registry: model files discovered from the ``skface.models`` entry points."""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._plugins import _warn, load_group

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelSource",
    "UnknownModelError",
    "cached_path",
    "fetch_model",
    "get_model_cache",
    "get_model_info",
    "list_models",
]

ENTRY_POINT_GROUP = "skface.models"

# skface's own models, as pyproject.toml declares them; used only when the installed
# metadata lacks them (an editable install older than the entry-point table).
_BUILTIN = {
    "faceapi_recognition": "skface.pretrained._recognition:FACEAPI_RECOGNITION",
}

# Names become folders of the cache, and file names files in it: neither may
# climb out of the cache or hide as a dot-file.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class UnknownModelError(FileNotFoundError, ValueError):
    """No model of that name is registered; the message lists the registered ones.

    Both a ``ValueError`` (as for an unknown dataset or backbone) and a
    ``FileNotFoundError`` (as for a model file that is not there), so
    that code loading "a file or a name" can catch either.
    """


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """Where a trained model file comes from, and what pins it.

    A plugin's entry point names a ``ModelSource`` (or a function returning
    one, or a dict of its fields). Exactly one of ``url``, ``path`` and
    ``build`` is given; every field is keyword-only.

    Parameters
    ----------
    sha256 : str, default=None
        The file's sha256, 64 hex digits (a ``"sha256:"`` prefix is
        accepted); required with ``url`` and ``path``. Every fetch checks
        it, local files included.
    url : str, default=None
        HTTP(S) address of the file. It is downloaded once into the model
        cache; ``SKFACE_MIRROR`` replaces it by ``<mirror>/<filename>``.
    path : str or path-like, default=None
        A local file (absolute, or relative to the working directory), used
        in place: it is verified, never copied.
    build : callable, default=None
        ``build(path, *, cache_home)`` writes the model file at ``path`` (a
        model converted at first use from pinned downloads: the builder
        pins and checks its own inputs, and writes through
        :func:`skface.save`, whose file records every tensor's sha256).
        Called once; later fetches find the file in the cache. Needs
        ``filename``; ``sha256`` stays None, as the written file holds the
        skface and torch versions that wrote it.
    description : str, default=""
        One line: what the model is and what it was trained on.
    filename : str, default=None
        Name of the file in the cache; default: the last part of ``url``
        (or of ``path``).
    license, homepage, citation, input, output : str, default=""
        Shown by ``skface models``: the weights' licence, where they come
        from, what to cite, what the model takes and what it gives.

    Examples
    --------
    >>> from skface.models import ModelSource
    >>> ModelSource(url="https://example.org/dbn.skface", sha256="ab" * 32,
    ...             description="DBN autoencoder, Olivetti faces").filename
    'dbn.skface'
    """

    sha256: str = None
    url: str = None
    path: str = None
    build: object = None
    description: str = ""
    filename: str = None
    license: str = ""
    homepage: str = ""
    citation: str = ""
    input: str = ""
    output: str = ""

    def __post_init__(self):
        # Normalised here, so that every consumer sees one spelling of each field.
        given = [f for f in ("url", "path", "build") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                f"A model source needs exactly one of url, path and build; got url={self.url!r}, "
                f"path={self.path!r}, build={self.build!r}."
            )
        if self.build is not None:
            if not callable(self.build):
                raise ValueError(f"build must be a callable build(path, *, cache_home), got "
                                 f"{self.build!r}.")
            if self.sha256 is not None:
                raise ValueError("A built model source has no sha256: its builder pins its own "
                                 "downloads; leave sha256 out.")
            if not self.filename:
                raise ValueError("A built model source needs filename=, the name of the file "
                                 "it writes in the cache.")
        else:
            digest = str(self.sha256).strip().lower().removeprefix("sha256:")
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"sha256 must be 64 hex digits, got {self.sha256!r}.")
            object.__setattr__(self, "sha256", digest)
        if self.url is not None:
            scheme = urlsplit(str(self.url)).scheme
            if scheme not in ("http", "https", "ftp"):
                raise ValueError(
                    f"url must be an http(s) or ftp address, got {self.url!r}; give a local "
                    "file as path= instead."
                )
            object.__setattr__(self, "url", str(self.url))
        elif self.path is not None:
            object.__setattr__(self, "path", str(Path(self.path).expanduser()))
        filename = self.filename or _default_filename(self.url, self.path)
        if not filename or not _SAFE_NAME.fullmatch(filename):
            raise ValueError(
                f"filename must be a plain file name (letters, digits, '_', '-', '.', '+'), "
                f"got {filename!r}; pass filename= explicitly."
            )
        object.__setattr__(self, "filename", filename)
        for text in ("description", "license", "homepage", "citation", "input", "output"):
            object.__setattr__(self, text, " ".join(str(getattr(self, text)).split()))

    def __call__(self):
        # An entry point may name an instance directly: the registry calls each
        # plugin (load_group keeps only callables), and an instance stands for itself.
        return self

    @property
    def is_local(self):
        """Whether the file is a local path rather than a download."""
        return self.path is not None

    @property
    def is_built(self):
        """Whether the file is written by ``build`` at first use."""
        return self.build is not None

    @property
    def location(self):
        """The URL, the local path, or where the builder gets its weights, for listings."""
        if self.is_built:
            return self.homepage or _describe(self.build)
        return self.path if self.is_local else self.url


def _default_filename(url, path):
    if path is not None:
        return Path(path).name
    return Path(unquote(urlsplit(url).path)).name


def get_model_cache(cache_home=None):
    """The folder downloaded models are kept in: ``<cache home>/models``.

    Parameters
    ----------
    cache_home : path-like, default=None
        See :func:`skface.datasets.get_cache_home`: ``$SKFACE_CACHE``, else
        ``$XDG_CACHE_HOME/skface``, else ``~/.cache/skface``.

    Returns
    -------
    folder : pathlib.Path
        Not created here.
    """
    from .datasets._home import get_cache_home  # deferred: keeps `import skface.models` light

    return get_cache_home(cache_home) / "models"


# The registry of the last load_group result: (that dict, its resolved sources).
_resolved = (None, {})


def _sources():
    """Every valid registered model: name -> ModelSource, sorted by name.

    Resolved once per plugin load (``skface._plugins.clear_cache`` forgets
    both); a plugin that raises or gives something that is not a model
    source warns, naming itself, and is skipped.
    """
    global _resolved
    plugins = load_group(ENTRY_POINT_GROUP, kind="model", builtins=_BUILTIN)
    if _resolved[0] is plugins:
        return _resolved[1]
    found = {}
    for name, plugin in sorted(plugins.items()):  # built-in fallbacks come last from load_group
        where = _describe(plugin)
        if not _SAFE_NAME.fullmatch(name):
            _warn(f"skface model plugin {name!r} ({where}) has a name that cannot be a "
                  "cache folder (use letters, digits, '_', '-', '.') and is skipped.")
            continue
        try:
            found[name] = _as_source(plugin())
        except Exception as exc:  # a third party's bug must not hide the other models
            _warn(f"skface model plugin {name!r} ({where}) is broken and is skipped: "
                  f"{type(exc).__name__}: {exc}")
    _resolved = (plugins, found)
    return found


def _describe(plugin):
    if isinstance(plugin, ModelSource):
        return plugin.location
    module = getattr(plugin, "__module__", None) or "?"
    return f"{module}:{getattr(plugin, '__qualname__', type(plugin).__name__)}"


def _as_source(value):
    if isinstance(value, ModelSource):
        return value
    if isinstance(value, dict):
        return ModelSource(**value)
    raise TypeError(f"expected a ModelSource or a dict of its fields, got {type(value).__name__}")


def list_models():
    """Names of every registered model, sorted.

    Returns
    -------
    names : list of str
        Entry points of the ``skface.models`` group that load and describe
        a valid source; nothing is downloaded.
    """
    return list(_sources())


def get_model_info(name):
    """The :class:`ModelSource` registered under ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.

    Returns
    -------
    source : ModelSource

    Raises
    ------
    UnknownModelError
        If no model of that name is registered (a ``ValueError`` and a
        ``FileNotFoundError``); the message lists the registered names.
    """
    sources = _sources()
    try:
        return sources[name]
    except (KeyError, TypeError):
        available = ", ".join(sources) or "(none)"
        raise UnknownModelError(
            f"Unknown model {name!r}. Available models: {available}. Third-party models "
            f"register under the {ENTRY_POINT_GROUP!r} entry-point group."
        ) from None


def cached_path(name, *, cache_home=None):
    """Where a registered model is, or would be, on disk; nothing is downloaded.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    cache_home : path-like, default=None
        See :func:`get_model_cache`.

    Returns
    -------
    path : pathlib.Path
        ``<model cache>/<name>/<filename>`` for a download, the file itself
        for a local source. It may not exist yet.
    """
    source = get_model_info(name)
    if source.is_local:
        return Path(source.path)
    # One folder per model: two plugins may well both ship a "model.skface".
    return get_model_cache(cache_home) / name / source.filename


def fetch_model(name, *, cache_home=None, progressbar=False):
    """The verified file of a registered model, downloaded on first use.

    A download goes through the same path as the datasets' files: pinned by
    its sha256, from ``SKFACE_MIRROR`` when that is set, into
    ``<cache home>/models/<name>/``. A later call finds it there and
    downloads nothing (the file's sha256 is checked again). A local source
    is checked against its sha256 and returned where it is. A built source
    (a model converted at first use) is written there once by its builder,
    which downloads and checks its own pinned inputs; :func:`skface.load`
    then checks every tensor against the sha256 the file records.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    cache_home : path-like, default=None
        See :func:`get_model_cache`.
    progressbar : bool, default=False
        Show a tqdm progress bar while downloading.

    Returns
    -------
    path : pathlib.Path
        The model file, for :func:`skface.load`.

    Raises
    ------
    UnknownModelError
        If no model of that name is registered; the message lists them.
    skface.datasets.ChecksumError
        If the file's sha256 differs from the pinned one. A download is
        deleted, never left in the cache; a local file is left alone.
    FileNotFoundError
        If a local source's file does not exist.
    """
    source = get_model_info(name)
    path = cached_path(name, cache_home=cache_home)
    if source.is_local:
        _check_local(name, source, path)
        return path
    if source.is_built:
        if not path.is_file():
            # The builder writes through skface.save (atomic): an interrupted or failed
            # build leaves no file, and the next fetch builds again.
            source.build(path, cache_home=cache_home)
        return path
    from .datasets._download import download  # deferred: pooch is imported only here

    return download(
        source.filename, path.parent, url=source.url, known_hash=f"sha256:{source.sha256}",
        progressbar=progressbar,
    )


def _check_local(name, source, path):
    from .datasets._download import ChecksumError

    if not path.is_file():
        raise FileNotFoundError(
            f"Model {name!r} is registered at {path}, which is not a file; reinstall the "
            "package that provides it."
        )
    digest = _sha256_of(path)
    if digest != source.sha256:
        raise ChecksumError(
            f"The file of model {name!r} at {path} has sha256 {digest}, not the pinned "
            f"{source.sha256}: it was changed or damaged. Reinstall the package that "
            "provides it."
        )


def _sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
