"""Static analysis of the IR (no torch): the cost pass and the cost table built on it."""
