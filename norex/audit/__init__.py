"""norex audit: checks on a server that it keeps the promise, and evidence an auditor can verify."""
