"""NorexVPN's Pulumi program: one dedicated Hetzner Cloud server per customer."""
