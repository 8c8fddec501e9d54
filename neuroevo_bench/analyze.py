"""``python -m neuroevo_bench.analyze``: the analysis CLI (see :mod:`neuroevo_bench.analysis.__main__`)."""

from neuroevo_bench.analysis.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
