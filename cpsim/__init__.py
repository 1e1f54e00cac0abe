"""The ``cpsim`` command: a thin dispatcher over the public functions of each layer."""
