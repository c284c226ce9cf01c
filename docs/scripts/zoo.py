"""Regenerates the model zoo table, ``keras_ultradeep/zoo.json``: the same as
``python -m keras_ultradeep.zoo`` (see that module for the options)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from keras_ultradeep.zoo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
