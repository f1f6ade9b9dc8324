"""Video in and out for per-frame models: ffmpeg plumbing (``ffmpeg``), resumable per-frame
processing with exact frame rate and audio (``pipeline``) and temporal stabilisation of
per-frame colourisation (``stabilize``).
"""
