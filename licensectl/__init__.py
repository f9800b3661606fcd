"""licensectl: the operators' and auditors' command line for the export license ledger."""
