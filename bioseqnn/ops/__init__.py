"""The operations: one module per command, each a function that returns a value. Each
checks its options and outputs, detects what its inputs are, hands them to the variant
that reads them and to the engine, and writes its one output.
"""
