"""The ``keras-ultradeep`` command line (also ``python -m keras_ultradeep``).

    keras-ultradeep list [PATTERN] [--weights] [--no-params]
    keras-ultradeep summary MODEL [--input-size N] [--model-arg KEY=VALUE ...]
    keras-ultradeep train MODEL [--recipe NAME] --dataset NAME|FOLDER --epochs N --batch-size B --output DIR
                          [--weights TAG [--freeze-epochs N]]
    keras-ultradeep evaluate MODEL_FILE --dataset NAME|FOLDER [--crops 1|10]
    keras-ultradeep predict MODEL IMAGE... [--top-k 5] [--json]
    keras-ultradeep export MODEL_FILE --format saved_model --output PATH [--overwrite]
    keras-ultradeep tune FAMILY --dataset NAME --max-trials N --epochs N --output DIR
    keras-ultradeep convert MODEL CHECKPOINT OUTPUT
    keras-ultradeep bench MODEL --mode train|infer|build --batch-size B --steps N [--memory-efficient] [--compare keras|timm] [--backend tensorflow,jax,torch]
    keras-ultradeep analyze {lesion,paths,reuse,columns} MODEL_FILE --dataset NAME [--json] [--plot FILE.png]

One module per command group (:mod:`.models`, :mod:`.training`,
:mod:`.predict`, :mod:`.export`, :mod:`.analysis`), each with an ``add_commands(commands)``; a command parses
its arguments and calls the library (registry, training, export, convert).
Keras and TensorFlow are imported only inside commands, so ``--help`` is
instant. A bad argument prints ``error: ...`` naming it and exits with status
2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_ultradeep.cli import analysis, export, models, predict, training
from keras_ultradeep.cli.common import FAILURE, USAGE_ERROR, CommandParser, UserError

__all__ = ["FAILURE", "USAGE_ERROR", "build_parser", "main"]

# In the order ``--help`` lists them.
COMMAND_GROUPS = (models, training, predict, export, analysis)


def build_parser():
    from keras_ultradeep import __version__

    parser = argparse.ArgumentParser(
        prog="keras-ultradeep",
        description="The keras_ultradeep model zoo: list, inspect, train, export and convert models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv=None):
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    prog = args.command_parser.prog
    try:
        status = args.run(args)
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.status
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"{prog}: error: {args.command_parser.spell(str(error))}", file=sys.stderr)
        return USAGE_ERROR
    except RuntimeError as error:  # a benchmark worker failed; its stderr is in the message
        print(f"{prog}: error: {error}", file=sys.stderr)
        return FAILURE
    except ImportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return status or 0
