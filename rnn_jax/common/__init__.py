"""Services shared by the layers above the math: errors, atomic files, flags, plots."""
