"""Reporting: figure functions (data in, Figure out), and every figure and table of a run rebuilt from its saved
artifacts. Imports no trainer."""
