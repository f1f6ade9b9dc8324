"""Exports, each verified numerically before it is declared done: SavedModel + TFLite
(``export``), ONNX (``onnx``), the colourisation signature (``colorize_signature``) and the
checks (``verify``).
"""
