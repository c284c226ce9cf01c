"""``python -m keras_ultradeep``: the ``keras-ultradeep`` command line."""

from keras_ultradeep.cli import main

raise SystemExit(main())
