"""Result-backend implementations (the interface is ``stemnb._backend``)."""
