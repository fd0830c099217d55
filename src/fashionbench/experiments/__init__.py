"""The seed studies' tables as data files, and the runner that prints paper vs ours."""
