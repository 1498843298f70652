"""The `onecrew-chat` command line: the typer app (main), one module per command group, and the process runners."""
