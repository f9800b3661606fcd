"""The contract: what crosses the wire between the ledger and everyone else.

Events and their envelope, the intake commands, the topics, the refusals and their codes, and how a
record is signed. It imports nothing but itself, pydantic, pycountry, cryptography and pynacl, so an outside
client can use it alone (``clients/python`` ships it as ``ledger_client.contract``).
"""
