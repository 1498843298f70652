"""Benchmarks (`make bench`): server time, Stream calls and database statements per request, over the emulator."""
