"""The producer's loop: the jobs (exchange → transform → staging, one log line each) and
their scheduler."""
