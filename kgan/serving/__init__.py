"""Running trained generators: run folders (``runs``), THE model loader (``loading.load_model``),
translators over SavedModel / TFLite / ``.keras`` (``translators``), inference precision,
tiling, size buckets, a memory-bounded worker process, and translating files and folders
(``inference``).
"""
