"""Colourising photos and frames with a colourisation model (``colorizer``: render factor, auto,
luma merge, out-of-memory fallback) and scoring colourisation checkpoints by colour
(``scoring``).
"""
