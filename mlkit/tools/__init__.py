"""Programs the command line runs over the whole kit: ``benchmarks`` (``python -m mlkit bench``) and
``doctor`` (``python -m mlkit doctor``)."""
