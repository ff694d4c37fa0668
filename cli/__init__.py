"""The command line (`omniflow`) and the dev supervisor: the top of the import graph."""
