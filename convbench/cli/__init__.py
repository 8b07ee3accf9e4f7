"""Commands: parse options, call library functions, render results."""
