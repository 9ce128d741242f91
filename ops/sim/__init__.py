"""Simulated partners: a clearing house (`cbs partner clearing-sim`) and a partner's whole flow over AMQP."""
