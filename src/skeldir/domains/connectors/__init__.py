"""Spend connectors: ad platforms' daily spend pulled into the spend ledger, one module per
platform behind one small interface (`platform.Connector`)."""
