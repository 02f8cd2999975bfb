"""HTTP pieces every edge shares: problem+json answers, rate limits, the answer when the database
is unavailable."""
