"""What every command module of the command line shares: exit statuses, the
user-error exception, argument types and the parser that spells arguments."""

from __future__ import annotations

import argparse
import ast

__all__ = [
    "FAILURE",
    "USAGE_ERROR",
    "CommandParser",
    "UserError",
    "add_command",
    "key_values",
    "model_arg_option",
    "model_kwargs",
]

USAGE_ERROR = 2
FAILURE = 1


class UserError(Exception):
    """A message for the user and the exit status that goes with it."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that remembers how each of its arguments is spelled,
    so a library error about ``batch_size`` can name ``--batch-size``."""

    def __init__(self, *args, **kwargs):
        self.spellings = {}  # before ArgumentParser adds --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.spellings[action.dest] = (
            action.option_strings[-1] if action.option_strings else action.metavar or action.dest
        )
        return action

    def spell(self, message):
        """``message`` with a leading ``argument:`` spelled the command line's way."""
        argument, sep, rest = message.partition(": ")
        if argument == "name":  # the registry's name for the model
            argument = "model_name"
        return f"{self.spellings[argument]}: {rest}" if sep and argument in self.spellings else message


def add_command(commands, name, run, **kwargs):
    """A subcommand ``name`` whose parsed arguments go to ``run(args)``."""
    parser = commands.add_parser(name, **kwargs)
    parser.set_defaults(run=run, command_parser=parser)
    return parser


def _model_arg(text):
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an argument name, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # not a Python literal: a plain string such as avg or imagenet


def model_arg_option(parser):
    parser.add_argument(
        "--model-arg",
        dest="model_kwargs",
        metavar="KEY=VALUE",
        type=_model_arg,
        action="append",
        help="a model argument, repeatable (e.g. --model-arg depth=10); VALUE is a Python "
        "literal, anything else a string",
    )


def key_values(pairs, option):
    """``{key: value}`` of repeated ``KEY=...`` options, refusing a key given twice."""
    values = {}
    for key, value in pairs or ():
        if key in values:
            raise UserError(f"{option}: {key!r} is given twice", USAGE_ERROR)
        values[key] = value
    return values


def model_kwargs(pairs):
    return key_values(pairs, "--model-arg")
