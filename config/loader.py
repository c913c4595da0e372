"""Load the gateway's YAML config into a validated `GatewayConfig`.

Steps: read the file → compose the YAML node tree (nodes keep their line numbers) → build plain data
from the nodes, reporting duplicate keys and substituting `${NAME}` secrets → pydantic validation →
`check_references` → resolve relative paths. Every failure becomes a `ConfigError` whose lines read
`{file}:{line}: {key.path}: {message}`, so an installer can go straight to the line.

Secrets: `${NAME}` in a string value is replaced by the environment variable NAME, else by the content
of `$CREDENTIALS_DIRECTORY/NAME` (systemd `LoadCredential=`) without its one trailing newline; `$${`
writes a literal `${`.

Relative paths (`data_dir`, `mqtt.ca_file`, `api.tls_cert_file`, …) are taken relative to the directory of
the config file, not the working directory, so the service finds the same files wherever it is started from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.models import ConfigReferenceError, GatewayConfig, check_references
from config.town import TownConfig

__all__ = ["ConfigError", "load_config", "load_model", "load_town_config"]

Loc = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
# `$${` (escape) or `${`, the latter with NAME} when it forms a valid reference.
_REFERENCE = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)\})?")


class ConfigError(Exception):
    """The config cannot be used. `str()` lists every problem, one per line; `.problems` holds them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, substitute, validate and cross-check the config at `path`.

    `environ` supplies `${NAME}` values and `CREDENTIALS_DIRECTORY` (default `os.environ`).
    A relative `data_dir` or `mqtt.ca_file` is resolved against the config file's directory.
    Raises `ConfigError` listing every problem found.
    """
    return load_model(path, GatewayConfig, environ, check=check_references, needs="'gateway_id'")


def load_town_config(path: str | Path, environ: Mapping[str, str] | None = None) -> TownConfig:
    """The town platform's `town.yaml` (config.town.TownConfig), read like the gateway's config: `${NAME}` secrets,
    line-numbered errors, relative paths taken from the file's directory."""
    return load_model(path, TownConfig, environ, needs="'data_dir'")


M = TypeVar("M", bound=BaseModel)


def load_model(
    path: str | Path,
    model: type[M],
    environ: Mapping[str, str] | None = None,
    *,
    check: Callable[[M], None] | None = None,
    needs: str = "its keys",
) -> M:
    """Read `path`, substitute `${NAME}`, validate as `model`, run `check` (a ConfigReferenceError keeps its
    YAML path), and resolve `data_dir` and `mqtt.{ca,cert,key}_file` against the file's directory."""
    path = Path(path)
    file = str(path)
    root = _compose(path, file, needs)
    builder = _Builder(file, os.environ if environ is None else environ)
    data = builder.build(root, ())
    if builder.problems:
        raise ConfigError(_by_line(builder.problems))
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_by_line(_validation_problems(exc, root, file))) from exc
    if check is not None:
        try:
            check(cfg)
        except ConfigReferenceError as exc:
            raise ConfigError([_problem(file, _line_of(root, exc.loc), exc.loc, str(exc))]) from exc
    return _resolve_paths(cfg, path.absolute().parent)


def _compose(path: Path, file: str, needs: str = "'gateway_id'") -> MappingNode:
    """The file's top-level mapping node; file, syntax and shape errors become ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{file}: is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, file)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            [f"{file}:{line}: YAML syntax error: {exc.reason} (character #x{exc.character:04x})"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: YAML error: {' '.join(str(exc).split())}"]) from None
    if root is None:
        raise ConfigError([f"{file}: config file is empty; it needs at least {needs}"])
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise ConfigError([f"{file}:{_line(root)}: the top level must be a mapping of keys, not {kind}"])
    return root


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> str:
    # PyYAML's own str() spans several lines; keep the problem, its line and where the construct began.
    mark = exc.problem_mark or exc.context_mark
    where = f"{file}:{mark.line + 1}" if mark else file
    message = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context:
        message += f" ({exc.context}"
        message += f" at line {exc.context_mark.line + 1})" if exc.context_mark else ")"
    return f"{where}: YAML syntax error: {message}"


class _Builder:
    """Turns the node tree into plain data, collecting problems rather than stopping at the first."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[tuple[int, str]] = []
        self._constructor = SafeConstructor()
        # An anchor used by several aliases is one node: build it once (and report its problems once).
        self._built: dict[int, object] = {}
        self._building: set[int] = set()

    def report(self, node: Node, loc: Loc, message: str) -> None:
        line = _line(node)
        self.problems.append((line, _problem(self.file, line, loc, message)))

    def build(self, node: Node, loc: Loc) -> object:
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._building:  # `&a [*a]`: an alias inside its own anchor would recurse for ever
            self.report(node, loc, "an alias refers to a node that contains it")
            return None
        self._building.add(key)
        try:
            if isinstance(node, MappingNode):
                value: object = self._mapping(node, loc)
            elif isinstance(node, SequenceNode):
                value = [self.build(item, (*loc, index)) for index, item in enumerate(node.value)]
            else:
                value = self._scalar(node, loc)
        finally:
            self._building.discard(key)
        self._built[key] = value
        return value

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, object]:
        # PyYAML keeps the last of two equal keys without a word; a repeated key is almost always a mistake.
        first: dict[str, int] = {}
        for key, _ in node.value:
            if key.tag == _MERGE_TAG:
                continue
            if not isinstance(key, ScalarNode):
                self.report(key, loc, "a key must be a plain name, not a list or mapping")
            elif key.value in first:
                self.report(key, (*loc, key.value), f"duplicate key {key.value!r} (first at line {first[key.value]})")
            else:
                first[key.value] = _line(key)
        try:
            self._constructor.flatten_mapping(node)  # `<<: *anchor` merge keys; explicit keys win
        except yaml.MarkedYAMLError as exc:
            self.report(node, loc, exc.problem or "invalid merge key")
            return {}
        # Keys stay the text written (so `on:` is not True) and match pydantic's loc when reporting.
        return {k.value: self.build(v, (*loc, k.value)) for k, v in node.value if isinstance(k, ScalarNode)}

    def _scalar(self, node: ScalarNode, loc: Loc) -> object:
        if node.tag in _NUMBER_TAGS and ":" in node.value:
            # YAML 1.1 reads 18:30 as the base-60 number 1110, which pydantic would take as 00:18:30.
            return node.value
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self.report(node, loc, f"cannot read value: {getattr(exc, 'problem', None) or exc}")
            return None
        if isinstance(value, str) and "${" in value:
            return self._substitute(value, node, loc)
        return value

    def _substitute(self, text: str, node: ScalarNode, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                self.report(node, loc, "'${' must start a ${NAME} reference (letters, digits, _); write $${ for '${'")
                return match.group(0)
            value = self._secret(name, node, loc)
            return match.group(0) if value is None else value

        return _REFERENCE.sub(replace, text)

    def _secret(self, name: str, node: ScalarNode, loc: Loc) -> str | None:
        if name in self.environ:
            return self.environ[name]
        directory = self.environ.get("CREDENTIALS_DIRECTORY")
        if directory and Path(directory, name).is_file():
            try:
                return Path(directory, name).read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                self.report(node, loc, f"cannot read ${{{name}}} from $CREDENTIALS_DIRECTORY: {exc}")
                return None
        self.report(node, loc, f"${{{name}}} is not set in the environment nor in $CREDENTIALS_DIRECTORY")
        return None


def _validation_problems(exc: ValidationError, root: MappingNode, file: str) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        if error["type"] == "missing":
            # The key is not in the file: point at the mapping that should hold it.
            line = _line_of(root, loc[:-1])
            message = f"missing required key {loc[-1]!r}"
        elif error["type"] == "extra_forbidden":
            line = _line_of(root, loc)
            message = f"unknown key {loc[-1]!r}"
        else:
            line = _line_of(root, loc)
            message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append((line, _problem(file, line, loc, message)))
    return problems


def _line_of(root: MappingNode, loc: Loc) -> int:
    """1-based line of the deepest node `loc` reaches; a mapping entry is placed at its key's line."""
    node: Node = root
    line = _line(root)
    for part in loc:
        found = _child(node, part)
        if found is None:  # e.g. a key that is absent and came from a default
            break
        line, node = found
    return line


def _child(node: Node, part: str | int) -> tuple[int, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in reversed(node.value):  # the last of equal keys is the one that counts
            if isinstance(key, ScalarNode) and key.value == part:
                return _line(key), value
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return _line(node.value[part]), node.value[part]
    return None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _dotted(loc: Loc) -> str:
    """('doors', 0, 'lock', 'pulse_ms') → 'doors[0].lock.pulse_ms'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _problem(file: str, line: int, loc: Loc, message: str) -> str:
    return f"{file}:{line}: {_dotted(loc)}: {message}" if loc else f"{file}:{line}: {message}"


def _by_line(problems: list[tuple[int, str]]) -> list[str]:
    # Pydantic reports in model field order; the reader edits in file order.
    return [text for _, text in sorted(problems, key=lambda problem: problem[0])]


def _resolve_paths(cfg: M, base: Path) -> M:
    data_dir = _resolve(cfg.data_dir, base)  # type: ignore[attr-defined]
    # The broker's CA and the client certificate and key, relative to the config file.
    mqtt = cfg.mqtt  # type: ignore[attr-defined]
    files = {name: _resolve(value, base) for name in ("ca_file", "cert_file", "key_file")
             if (value := getattr(mqtt, name)) is not None}  # fmt: skip
    api = cfg.api  # type: ignore[attr-defined]
    api_files = {name: _resolve(value, base) for name in ("tls_cert_file", "tls_key_file")
                 if (value := getattr(api, name)) is not None}  # fmt: skip
    # The models are frozen: copy with the resolved values (already validated as paths).
    return cfg.model_copy(update={"data_dir": data_dir, "mqtt": mqtt.model_copy(update=files),
                                  "api": api.model_copy(update=api_files)})  # fmt: skip


def _resolve(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path
