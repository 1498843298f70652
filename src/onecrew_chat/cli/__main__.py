"""`python -m onecrew_chat.cli`: the same as the `onecrew-chat` command."""

from onecrew_chat.cli.main import main

main()
