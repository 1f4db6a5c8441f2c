"""Runtimes that host the posbus actors without their threads (see `inline`)."""
