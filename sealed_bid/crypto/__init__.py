"""CMS formats: signed data, envelopes, bid packages. No token, no database, no network."""
