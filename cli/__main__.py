"""`python -m cli`: the `omniflow` command."""

from cli.main import main

main()
