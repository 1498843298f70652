"""The adapter over the official getstream SDK: the only code that talks to Stream. Imports nothing else of ours."""
