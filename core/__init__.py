"""The ground floor: value types, units, settings and grammars every other package shares. No I/O.

Dependencies point down: ``rightsizer -> {dashboard, api} -> analytics -> collector -> core``; ``core`` imports
nothing of the project's other packages.
"""
