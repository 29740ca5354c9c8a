"""Entry point of a lab server's supervisor: python -m norex.lab.supervisor NAME."""

import sys

from norex.lab.servers import supervise

if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1]))
