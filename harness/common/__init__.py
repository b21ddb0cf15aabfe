"""Small helpers every stage shares, free of TensorFlow.

Column names, validation, run ids, the plugin registry and option declarations, a quiet start and progress output.
"""
