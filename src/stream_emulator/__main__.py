"""`python -m stream_emulator`: serve the emulator on its own."""

from .cli import main

main()
