"""The course kit: turn any refnode function into an exercise (see README.md)."""
