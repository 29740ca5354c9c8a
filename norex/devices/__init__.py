"""A customer's devices: WireGuard peers on their server (store), their client configs (config) and the
`norex devices` commands (cli). Stand-in phones for the lab are norex.lab.phones."""
