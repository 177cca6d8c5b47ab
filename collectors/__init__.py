"""Host-side probe scripts (POSIX sh), shipped as package data."""
