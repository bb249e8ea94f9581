"""The MRML bridge: the only package of the core importing ``slicer`` (never ``qt``); :mod:`.bridge` gathers it."""
