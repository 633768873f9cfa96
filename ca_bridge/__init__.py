"""CA bridge: the trust store, signer-certificate validation and the CA sync job.

``sealed_bid`` asks only one question here: is this signer valid at this time, for this
purpose? It gets an immutable ``SignerValidation`` or a typed ``CaBridgeError``.
"""
