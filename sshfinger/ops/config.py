"""
The configuration file (C{--config FILE}, TOML): its keys are the long option names of C{twistd sshfinger}, and
its values become command-line arguments placed before the real ones, so that the command line overrides the
file.  A key is checked by the same code as its option (L{twisted.python.usage.Options} coercions, C{opt_}
methods and C{postOptions}); a bad key or value is one line naming the file, the key and the problem.

    finger = "tcp:79"
    admin = ["root", "alice"]          # a repeatable option: a list (or one string)
    auth = ["file:/etc/sshfinger/passwd"]
    finger-timeout = 10                # numbers as numbers
    no-list = true                     # flags as booleans
"""

from __future__ import annotations

import difflib
import getopt
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.python import usage

#: Options that make no sense in a file (they print and exit, or name another file).
NOT_IN_FILE = frozenset({"config", "help", "version", "help-auth", "help-auth-type"})


class ConfigError(usage.UsageError):
    """
    A configuration file cannot be used; the message is one line naming the file (and the key).
    """


@dataclass
class FileArguments:
    """
    What a configuration file adds to a command line.

    @ivar path: the file.
    @ivar arguments: command-line arguments, key by key (keys the command line overrides left out).
    @ivar keys: the keys whose values are in effect (for naming the file in later errors).
    """

    path: str
    arguments: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


def option_kinds(options: usage.Options) -> dict[str, str]:
    """
    Return the kind of every long option of C{options} a file may set: C{"flag"}, C{"int"}, C{"float"},
    C{"str"} (a parameter, by the type of its default; C{"scalar"} without a default) or C{"list"} (a repeatable
    C{opt_} method taking an argument).
    """
    kinds: dict[str, str] = {}
    for spec in options.longOpt:
        name = spec.rstrip("=")
        if name in NOT_IN_FILE:
            continue
        if not spec.endswith("="):
            if name in options.defaults:
                kinds[name] = "flag"
        elif name in options.defaults:
            default = options.defaults[name]
            if default is None:
                kinds[name] = "scalar"  # no default to tell: a string, or a number its coercion may take
            elif isinstance(default, bool) or not isinstance(default, int | float):
                kinds[name] = "str"
            else:
                kinds[name] = "float" if isinstance(default, float) else "int"
        else:
            kinds[name] = "list"
    return kinds


def command_line_names(options: usage.Options, args: Sequence[str]) -> dict[str, list[str]]:
    """
    Return the long names of the options C{args} gives, each with its values in order (abbreviations and
    short options resolved as L{usage.Options} resolves them); empty if C{args} does not parse (the real parse
    reports that).
    """
    try:
        given, _ = getopt.getopt(list(args), options.shortOpt, options.longOpt)
    except getopt.GetoptError:
        return {}
    names: dict[str, list[str]] = {}
    for option, value in given:
        name = option.lstrip("-")
        name = options.synonyms.get(name, name).replace("_", "-")
        names.setdefault(name, []).append(value)
    return names


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _arguments(name: str, kind: str, value: Any) -> list[str]:
    """
    The command-line arguments for one key; raise L{ValueError} naming the expected type.
    """
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, not {_type_name(value)}")
        return [f"--{name}"] if value else []
    if kind in ("int", "float"):
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or (kind == "int" and isinstance(value, float)):
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, not {_type_name(value)}")
        return [f"--{name}", str(value)]
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, not {_type_name(value)}")
        return [f"--{name}", value]
    if kind == "scalar":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a string or a number, not {_type_name(value)}")
        return [f"--{name}", str(value)]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise ValueError(f"expected a string or a list of strings, not {_type_name(value)}")
    return [argument for item in values for argument in (f"--{name}", item)]


def problem(error: usage.UsageError, name: str) -> str:
    """
    The part of an option's error message that says what is wrong, without the option's name (C{"--name: "})
    and without L{usage.Options}' C{"Parameter type enforcement failed: "}.
    """
    text = str(error).removeprefix("Parameter type enforcement failed: ")
    return re.sub(rf"^--{re.escape(name)}\b[: ]\s*", "", text) or text


def load(path: str) -> dict[str, Any]:
    """
    Read a TOML file.

    @raise ConfigError: with one line, if it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8") from None


def file_arguments(options: usage.Options, path: str, args: Sequence[str], probe: type[usage.Options]) -> FileArguments:
    """
    Turn a configuration file into command-line arguments for C{options}, checking each key on its own.

    @param options: the options being parsed (for their names and kinds).
    @param path: the file.
    @param args: the real command line: a key it also gives is left out (for a list too: the command line's
        C{--admin} replaces the file's C{admin}).
    @param probe: an options class whose C{parseOptions} checks values without C{postOptions}; each key is
        parsed alone with it, so that an error names the key.
    @raise ConfigError: with one line naming the file, the key and the problem.
    """
    table = load(path)
    kinds = option_kinds(options)
    overridden = command_line_names(options, args)
    result = FileArguments(path)
    for name, value in table.items():
        if name not in kinds:
            close = difflib.get_close_matches(name, list(kinds), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            if name in NOT_IN_FILE:
                raise ConfigError(f"{path}: {name}: not allowed in a configuration file")
            raise ConfigError(f"{path}: {name}: unknown key{hint}; keys are the long options of twistd sshfinger")
        try:
            arguments = _arguments(name, kinds[name], value)
        except ValueError as e:
            raise ConfigError(f"{path}: {name}: {e}") from None
        try:
            probe().parseOptions(arguments)
        except usage.UsageError as e:
            raise ConfigError(f"{path}: {name}: {problem(e, name)}") from None
        if name in overridden:
            continue
        result.arguments += arguments
        result.keys.add(name)
    return result


def config_path(options: usage.Options, args: Sequence[str]) -> str | None:
    """
    Return the C{--config} value C{args} give (the last one), or L{None}.
    """
    values = command_line_names(options, args).get("config")
    return values[-1] if values else None


def name_the_file(error: usage.UsageError, given: FileArguments) -> usage.UsageError:
    """
    Return C{error} reworded to name the file and key when it is about an option whose value came from the file
    (a check in C{postOptions}: an endpoint, a directory), else C{error} itself.
    """
    match = re.match(r"^--([a-z][a-z0-9-]*)", str(error))
    if match is None or match.group(1) not in given.keys:
        return error
    return ConfigError(f"{given.path}: {match.group(1)}: {problem(error, match.group(1))}")


__all__ = [
    "NOT_IN_FILE",
    "ConfigError",
    "FileArguments",
    "command_line_names",
    "config_path",
    "file_arguments",
    "load",
    "name_the_file",
    "option_kinds",
    "problem",
]
