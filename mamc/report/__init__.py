"""Reporting: figure functions (data in, Figure out), every figure and table of a run rebuilt from its saved artifacts. Imports no trainer."""
