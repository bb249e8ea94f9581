"""What users read: report.html/.pdf (headless Chromium), de-identification."""
