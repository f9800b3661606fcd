"""Officers' work on the review service: the queue of escalated cases (``queue``), their actions judged against
the ledger's fold (``actions``), and the HTTP API that carries both (``api``)."""
