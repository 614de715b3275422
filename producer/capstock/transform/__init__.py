"""Stage 2, transform: raw exchange JSON into rows, the universe ranking, trade-id gap
accounting. Pure functions, no I/O."""
