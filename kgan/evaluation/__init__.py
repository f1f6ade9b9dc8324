"""Scoring generators against baselines (``evaluate``), picture reports (``report``) and their
loss curves (``curves``).
"""
