"""Reading YAML that may come from others: configs, a run's config.yaml. Plain data only, no
aliases, bounded depth and size, each refusal a ConfigError naming the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, short_repr

__all__ = ["parse_yaml", "read_yaml_file", "parse_own_yaml", "MAX_CONFIG_BYTES", "MAX_YAML_DEPTH"]

MAX_CONFIG_BYTES = 4 * 2**20  # a config is a few kilobytes
MAX_YAML_DEPTH = 64  # levels of nesting; a model spec needs a dozen


def parse_yaml(text: str, where: str = "config") -> Any:
    r"""Parse YAML safely for files that may come from others: only plain data (safe_load),
    no aliases (``*name``: a 386-byte "billion laughs" file expands to gigabytes), and at most
    :data:`MAX_YAML_DEPTH` levels of nesting (deeper would exhaust Python's stack).

    >>> parse_yaml("a: [1, 2]")
    {'a': [1, 2]}
    >>> parse_yaml("a: &x [1]\nb: *x")
    Traceback (most recent call last):
    netwright.errors.ConfigError: config: line 2: YAML aliases ('*x') are not accepted in netwright files: they can expand a small file into gigabytes. Fix: write the value out in full.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(
                    f"{where}: line {event.start_mark.line + 1}: YAML aliases ('*{event.anchor}') "
                    f"are not accepted in netwright files: they can expand a small file into "
                    f"gigabytes. Fix: write the value out in full."
                )
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark
                    raise ConfigError(
                        f"{where}: line {mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels "
                        f"deep; a netwright config needs far fewer. Fix: flatten it; a file this "
                        f"deep is corrupt or crafted."
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {short_repr(str(exc), 400)}") from None
    except RecursionError:  # flow collections ("[[[[...") recurse in the parser, not the composer
        raise ConfigError(f"{where}: nested too deeply to parse; it is corrupt or crafted.") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | os.PathLike, where: str | None = None,
                   fix: str = "Fix: check the path.", *, allow_link: bool = True) -> Any:
    """A YAML file as data (through :func:`parse_yaml`), refusing folders, files over
    :data:`MAX_CONFIG_BYTES`, text that is not UTF-8 and (``allow_link=False``, for files
    inside a run directory) symbolic links, with a ConfigError naming the file."""
    path = Path(path)
    where = where or f"config file {str(path)!r}"
    if (not allow_link and path.is_symlink()) or not path.is_file():
        raise ConfigError(f"{where} is not a regular file{'' if allow_link else ' (a link)'}; "
                          f"expected a YAML config. {fix}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where} is {size:,} bytes; a config is a few kilobytes (at most "
                          f"{MAX_CONFIG_BYTES:,} are read). {fix}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start}). {fix}") from None
    return parse_yaml(text, where)


def parse_own_yaml(text: str) -> Any:
    """YAML that this process has just written itself (a run's resolved config): safe loading
    with libyaml's C parser where PyYAML has it (about 10x faster than the Python one; each
    training run parses its config once), never for files from elsewhere (:func:`parse_yaml`).

    >>> parse_own_yaml("a: [1, 2]")
    {'a': [1, 2]}
    """
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
