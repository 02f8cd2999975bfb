"""The spend ledger: a tenant's ad spend per day, platform, account, campaign, ad set and ad."""
