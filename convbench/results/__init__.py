"""Results: rows and their files, console tables, plots, analysis."""
