"""A client of the export license ledger, for the parties outside it.

- Agencies' and customs' backends send signed commands: :class:`Sender` (``submit_application``,
  ``record_export``, or ``sign_and_send`` for a command as built).
- Other services follow license changes: :func:`subscribe_license_changes`.
- Every sender reads its refused commands, and anyone the state of an application, a license or an export,
  over the registry's HTTP API: :class:`Ledger`.
- :mod:`ledger_client.keys` makes and reads the Ed25519 key a sender signs with.

The models are the ledger's own contract (:mod:`ledger_client.contract`): the same source the services use.
"""

from ledger_client.changes import subscribe_license_changes
from ledger_client.connection import KafkaLogin, Topics
from ledger_client.contract.commands import RecordExport, SubmitApplication
from ledger_client.contract.events import Application, ExportDeclaration, LicenseState, Reason
from ledger_client.http import Ledger, LedgerError
from ledger_client.intake import Sender, Sent

__all__ = [
    "Application",
    "ExportDeclaration",
    "KafkaLogin",
    "Ledger",
    "LedgerError",
    "LicenseState",
    "Reason",
    "RecordExport",
    "Sender",
    "Sent",
    "SubmitApplication",
    "Topics",
    "subscribe_license_changes",
]
