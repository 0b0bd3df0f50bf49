"""The ``faena`` command line: a thin shell over the library."""
