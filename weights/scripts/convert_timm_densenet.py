"""Reproduces a converted DenseNet weights file from its timm/torchvision checkpoint.

    python weights/scripts/convert_timm_densenet.py densenet161 tv_in1k
    python weights/scripts/convert_timm_densenet.py densenet121 ./model.safetensors --notop

SOURCE is a manifest tag, whose checkpoint is downloaded (hash-checked) into
the Keras cache, or the path of a local checkpoint. The sha256 printed at the
end identifies the Keras file; it is stable from run to run (Keras names the
input layer per process, so convert in a fresh process to compare hashes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _checkpoint_for_tag(model, tag):
    from keras_ultradeep import weights as weights_lib

    entry = weights_lib.find_entry(model, tag)
    if entry is None:
        tags = weights_lib.pretrained_tags(model)
        raise SystemExit(
            f"error: {tag!r} is neither an existing file nor a weights tag of {model} "
            f"(tags: {', '.join(tags) if tags else 'none'})"
        )
    if "checkpoint" not in entry.files:
        raise SystemExit(f"error: {model} {tag} is a Keras file already; nothing to convert")
    spec = entry.files["checkpoint"]
    print(f"downloading {spec['url']}", file=sys.stderr)
    destination = weights_lib.cache_dir() / spec["file_name"]
    path = weights_lib.download(spec["url"], destination, spec["hash"])
    return path, entry.tag, dict(entry.architecture)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="registry name, e.g. densenet121 or densenet161")
    parser.add_argument("source", help="a manifest weights tag (e.g. tv_in1k) or a checkpoint path")
    parser.add_argument(
        "--output",
        type=Path,
        help="the .weights.h5 file to write (default: ./<model>.<tag>[_notop].weights.h5, "
        "the name the weights cache uses)",
    )
    parser.add_argument("--notop", action="store_true", help="convert without the classifier")
    args = parser.parse_args(argv)

    from keras_ultradeep.convert import convert_checkpoint

    if os.path.isfile(args.source):
        checkpoint, tag, options = Path(args.source), Path(args.source).name.split(".")[0], {}
    else:
        checkpoint, tag, options = _checkpoint_for_tag(args.model, args.source)
    if args.notop:
        options["include_top"] = False
    output = args.output or Path(f"{args.model}.{tag}{'_notop' if args.notop else ''}.weights.h5")

    from keras_ultradeep.weights import file_hash

    try:
        written = convert_checkpoint(args.model, checkpoint, output, **options)
    except (ValueError, ImportError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"sha256:{file_hash(written)}  {written}")


if __name__ == "__main__":
    main()
