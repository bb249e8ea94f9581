"""The MRML bridge (the only module importing ``slicer``; never ``qt``)."""
