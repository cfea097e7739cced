"""Float64 NumPy analyses of attention matrices (seed 004: moving a low-rank factor out of the softmax)."""
