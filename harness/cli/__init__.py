"""The command line, ``python -m harness``.

Option parsing, the checks of every input made before TensorFlow is imported, the catalogue of plugins
(``--list``, ``--help``) and the instant answers for finished work.
"""
