"""Studies of weight averaging."""
