"""Services: the product's rules, using a token, a store, a trust store and a clock
through the objects in ``Platform``. No gRPC here."""
