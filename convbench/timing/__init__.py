"""Timing: the measuring loop, its statistics, noise signals, memory and the machine's peak."""
