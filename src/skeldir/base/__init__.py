"""Base: configuration, database access, crypto, money, credentials, observability, HTTP pieces."""
