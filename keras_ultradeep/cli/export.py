"""The ``export`` command: a .keras model for serving, verified against the model."""

from __future__ import annotations

from keras_ultradeep.cli.common import FAILURE, UserError, add_command

__all__ = ["add_commands"]


def _export(args):
    from keras_ultradeep import export

    try:
        difference = export.export_model(
            args.model_file,
            args.output,
            format=args.format,
            overwrite=args.overwrite,
            verify=not args.no_verify,
        )
    except export.ExportVerificationError as error:
        raise UserError(str(error), FAILURE) from None
    print(f"Exported {args.model_file} to {args.output} ({args.format}).")
    if difference is not None:
        print(
            f"Verified: max abs difference from the Keras model on a random batch: {difference:.3g} "
            f"(tolerance {export.VERIFY_TOLERANCE:g})"
        )


def add_commands(commands):
    sub = add_command(commands, "export", _export, help="export a .keras model for serving, verified")
    sub.add_argument("model_file", metavar="MODEL_FILE")
    sub.add_argument(
        "--format",
        default="saved_model",
        help="saved_model (the default, a folder), tflite (a .tflite file) or onnx (a .onnx file); "
        'tflite and onnx need pip install "keras-ultradeep[export]"',
    )
    sub.add_argument("--output", required=True, metavar="PATH")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing PATH")
    sub.add_argument("--no-verify", action="store_true", help="skip running the export against the model")
