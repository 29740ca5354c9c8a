"""`norex demo` (story, cli): the whole story on this machine, built on a local control plane (plane) of
separate processes (processes) that the end-to-end tests use too."""
