"""Bulk directory import: users, companies and memberships from files, OneCrew's database or the bulk API.

`kinds` says what a row of each kind is and validates it (with the internal API's own schemas),
`writes` writes a batch of valid rows with a few bulk statements, `batch` validates and dispatches a
batch, `files` and `sql_source` read rows (`rows` is what they yield), and `runner` drives a whole
import, one transaction per batch, so an interrupted run resumes by running it again.
"""
