"""Counts agree with their nouns in what the commands print."""

from onecrew_chat.cli.sync_runs import count


def test_singular_and_plural():
    assert count(1, "identity sync") == "1 identity sync"
    assert count(2, "identity sync") == "2 identity syncs"
    assert count(1, "Stream call") == "1 Stream call"
    assert count(0, "Stream call") == "0 Stream calls"
    assert count(1, "identity") == "1 identity"
    assert count(3, "identity") == "3 identities"
    assert count(1200, "conversation") == "1,200 conversations"
    assert count(2, "person", "people") == "2 people"
