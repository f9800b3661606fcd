"""The console: officers' and auditors' pages over the services' HTTP APIs, server-rendered, with no CDN."""
