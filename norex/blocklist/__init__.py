"""Blocklist compiler: public ad/tracker/malware lists in, one Unbound include file for a customer's resolver out.

The pure core (`names`, `parse`, `compiler`, `render`) does no I/O so every rule can be tested on strings;
`fetch`, `build` and `cli` are the thin shell that reads sources and writes the output atomically.
Nothing here logs or prints a domain: the only place names appear is the generated file itself.
"""

CATEGORIES = ("ads", "trackers", "malware")
ZONE_TYPES = ("always_nxdomain", "always_refuse", "always_null")
