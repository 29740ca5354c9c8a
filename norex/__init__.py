"""NorexVPN infrastructure: lab, roles driver, billing-to-servers control plane."""
