"""The dashboard's static files (page, script, style), served by
`skeldir.adapters.api.dashboard`."""
