"""The measurements: dose statistics and isodose, registration, boundary findings, change in shape, typed findings."""
