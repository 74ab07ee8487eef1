"""Broker implementations (the interface is ``stemnb._broker``)."""
