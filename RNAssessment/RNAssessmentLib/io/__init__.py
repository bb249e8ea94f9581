"""Input and geometry: LPS/RAS conversion, image/RTDOSE/structure readers and writers, the case manifest."""
