"""Teaching cases with ground truth: the anatomical phantom, the paper's scenarios and their PD twins, the demo."""
