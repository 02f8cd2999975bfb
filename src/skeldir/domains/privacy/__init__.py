"""Privacy on request: erasure of what is derived from a person, data requests, shop
redaction, retention. (Stripping personal data from payloads on arrival is ingestion's
`privacy` module; this domain acts on what was kept.)"""
