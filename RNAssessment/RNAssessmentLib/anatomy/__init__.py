"""Anatomy on the SRS-time image: brain mask, tissue intensities, mid-sagittal plane, atlas compartments and boundary structures."""
