"""One sweep: thresholding the model by importance and evaluating it.

Ranking items (the thresholder), nested masks, the forward and shrunk evaluators, matched controls, and
recovery after thresholding.
"""
