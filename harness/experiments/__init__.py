"""Experiments built on runs: selective forgetting (seeds 000, 001) and the localisation of seed 002."""
