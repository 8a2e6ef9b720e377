"""Settings as data: the spec types, the demo hub, the generated hubs, the general model's
regimes, the demo suite, the oracle's recipe.

Nothing here runs anything; every stage above reads these values (big_vision's configs).
"""
