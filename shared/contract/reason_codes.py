"""Every reason code a sender, an officer, an applicant or an operator can meet, with what it means.

One entry per code the code can give (``tests/unit/test_reason_codes.py`` reads the source and holds the
two together), from which ``docs/reason-codes.md`` is generated (``licensectl docs``): a code a client
programs against is never one the page does not list, nor one the code no longer gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .events import ApplicationStatus, LicenseStatus

Where = Literal["http", "intake", "case stream", "ledger", "review", "officer", "applicant"]
WHERE: dict[Where, str] = {
    "http": "an HTTP answer (4xx, 503) of any service",
    "intake": "a dead letter of an intake topic (`dlq.reason-code`), for the command's sender",
    "case stream": "a dead letter of the case stream: an event no reader may act on (`refused_events` keeps it)",
    "ledger": "the ledger's verdict on an export declaration (`GET /exports/{declaration}`)",
    "review": "review's rejection of an application, or an escalation to an officer",
    "officer": "an officer's action refused (HTTP 4xx of review's /officer routes)",
    "applicant": "a withdrawal or resubmission refused (HTTP 4xx of the applications service)",
}


@dataclass(frozen=True)
class Code:
    code: str
    where: tuple[Where, ...]
    meaning: str


def _codes(*codes: Code) -> dict[str, Code]:
    return {c.code: c for c in codes}


HTTP: tuple[Where, ...] = ("http",)
INTAKE: tuple[Where, ...] = ("intake",)
STREAM: tuple[Where, ...] = ("case stream",)
LEDGER: tuple[Where, ...] = ("ledger",)
REVIEW: tuple[Where, ...] = ("review",)
BOTH: tuple[Where, ...] = ("http", "intake")
RULE: tuple[Where, ...] = ("review", "officer")  # a rule's reason: in review's decision, or refusing an officer

CATALOG: dict[str, Code] = _codes(
    # Credentials and rights.
    Code("missing_credential", HTTP, "401: no API key or token was sent (Authorization: Bearer ...)."),
    Code("invalid_credential", HTTP, "401: the key or token is not one this system issued, or it was revoked."),
    Code("expired_credential", HTTP, "401: the key or token has expired."),
    Code("role_required", HTTP, "403: the credential lacks the role the route requires."),
    Code("other_agency", BOTH, "403: the credential (HTTP) or the signing key (intake) is another agency's."),
    Code("other_customs_office", INTAKE, "The customs key is trusted for other ports than the declaration's."),
    Code("officer_identity_required", HTTP, "403: an officer's action needs a credential issued to an officer."),
    Code("officer_mismatch", HTTP, "403: the request names another officer than the credential's."),
    Code("sender_required", HTTP, "403: refusals are read with a credential bound to their sender (--sender)."),
    Code("rate_limited", HTTP, "429: too many requests; Retry-After says when to send again."),
    # Reading the input.
    Code("request_too_large", HTTP, "413: the request body is larger than the service's limit."),
    Code("oversize", INTAKE, "The command is larger than the intake's limit."),
    Code("empty_message", INTAKE, "The record has no body (empty, or a tombstone)."),
    Code("malformed_json", BOTH, "The body is not JSON, or not UTF-8."),
    Code("duplicate_key", BOTH, "The JSON names a key twice in one object: which value was meant is unknown."),
    Code("too_deeply_nested", BOTH, "The JSON nests too deeply to be read."),
    Code(
        "invalid_text",
        BOTH,
        "A text (a value or a key, anywhere) holds a control, format (bidirectional, zero-width) or separator "
        "character, or the URL holds NUL.",
    ),
    Code("not_an_object", INTAKE, "The command is JSON, but not an object."),
    Code("unknown_type", INTAKE, "The command's type is none this topic takes."),
    Code("wrong_topic", INTAKE, "The command belongs on the other intake topic."),
    Code("unsupported_schema_version", INTAKE, "The command's schema_version is not one this service reads."),
    Code(
        "invalid_fields",
        BOTH,
        "Fields failed validation: `errors` names each field with its own code (the validator's error type, e.g. "
        "`missing`, `string_pattern_mismatch`, `int_type`) and what is wrong with it.",
    ),
    Code("unreadable_record", INTAKE, "Reading the record raised what no check anticipated; the reason says what."),
    Code(
        "processing_failed",
        ("intake", "case stream"),
        "Handling the record failed three times for a reason of its own.",
    ),
    Code("bad_request", HTTP, "400: the request could not be read."),
    Code("not_found", HTTP, "404: no such route."),
    Code("method_not_allowed", HTTP, "405: the route does not take this method."),
    Code("conflicting_parameters", HTTP, "422: two query parameters that exclude each other were given."),
    Code("invalid_cursor", HTTP, "422: `after` is not the `next_after` of a previous page."),
    Code("unknown_case", HTTP, "404: the ledger applied no event of this case (or none since it kept positions)."),
    Code("log_unavailable", HTTP, "503: the case stream did not give a record the ledger applied; try again."),
    Code("record_gone", HTTP, "410: the case stream no longer holds a record the ledger applied (deleted)."),
    Code("idempotency_key_reused", HTTP, "422: your agency used this Idempotency-Key before for another request."),
    Code("command_id_reused", INTAKE, "This command id was sent before with other content."),
    # Signatures.
    Code(
        "unsigned_event", ("intake", "case stream"), "The record carries no ledger-signature and ledger-key-id headers."
    ),
    Code(
        "untrusted_key",
        ("intake", "case stream"),
        "The signing key is unknown, another producer's, not valid at the record's time, or not trusted to sign "
        "this (commands with a key for events, an event type its producer does not append).",
    ),
    Code("bad_signature", ("intake", "case stream"), "The signature does not hold over the record's bytes."),
    # The case stream.
    Code("unreadable_event", STREAM, "The record is not an event of the contract."),
    Code("misplaced_event", STREAM, "The event sits in a partition that is not its case's (a copy, say)."),
    Code("event_id_reused", STREAM, "The event's id was applied already, in another partition."),
    Code("license_number_taken", STREAM, "The event opens a license number another case holds."),
    # Not found, or not yet.
    Code("unknown_application", HTTP, "404: no such application (or not escalated, for an officer)."),
    Code(
        "refused_at_intake",
        HTTP,
        "422: the application was refused at intake and is not in the ledger; the error names the reason.",
    ),
    Code("unknown_license", ("http", "intake", "ledger"), "No such license (in the ledger, for a declaration)."),
    Code("unknown_declaration", HTTP, "404: the declaration is not in the ledger (yet)."),
    Code(
        "unknown_reference", HTTP, "404: the reference data holds no such enterprise, model, authorisation or outlet."
    ),
    Code("not_caught_up", HTTP, "503: the service has not read its case stream far enough yet; send again."),
    Code(
        "broker_unavailable",
        HTTP,
        "503: Kafka did not acknowledge the write (fewer in-sync replicas than min.insync.replicas, no leader); "
        "nothing was recorded: send again after Retry-After.",
    ),
    Code(
        "database_unavailable",
        HTTP,
        "503: the database did not answer (restarting, unreachable); nothing was recorded: send again after "
        "Retry-After.",
    ),
    Code(
        "ledger_unavailable",
        HTTP,
        "503: the ledger does not follow its log now (replaced, cut, or altered); an intake command waits in its "
        "topic until it does.",
    ),
    # Export declarations.
    Code("declaration_conflict", BOTH, "409: the declaration number was recorded before with other content."),
    Code("already_recorded", ("http",), "The pre-check's answer: the declaration is recorded already."),
    Code("vin_already_exported", LEDGER, "A VIN of the declaration was exported, or is being judged, elsewhere."),
    Code("vin_listed_twice", LEDGER, "The declaration lists a VIN twice."),
    Code("exceeds_balance", LEDGER, "The declaration exports more than the license's balance."),
    Code("declarations_exhausted", LEDGER, "The license has been used for its 12 declarations (rule 8)."),
    Code("batch_mismatch", LEDGER, "A used-vehicle license is used once, for exactly its quantity and VINs."),
    Code("wrong_port", LEDGER, "The declaration's port is not the license's."),
    Code("outside_validity", LEDGER, "The export date lies outside the license's validity."),
    *(
        Code(
            f"license_{status}",
            ("ledger", "officer"),
            f"The license is {status}: it admits no export, and "
            "officers' actions apply only to licenses in the states each names.",
        )
        for status in LicenseStatus
        if status is not LicenseStatus.ACTIVE
    ),
    Code("license_not_suspended", ("officer",), "409: only a suspended license can be reinstated."),
    # Review's rules (rejections and escalations).
    Code("applicant_not_qualified", RULE, "Rule 1: the applicant is not a qualified exporter."),
    *(
        Code(f"applicant_listing_{status}", RULE, f"Rule 1: the applicant's listing is {status}.")
        for status in ("suspended", "cancelled")
    ),
    Code("manufacturer_mismatch", RULE, "Rule 1: a manufacturer applies for its own vehicles only."),
    Code("distributor_not_authorised", RULE, "Rule 1: no active authorisation from the maker."),
    Code("brand_not_authorised", RULE, "Rule 1: the authorisation does not cover the brand."),
    Code("model_not_listed", RULE, "Rule 2: the model is not in MIIT's announcement."),
    Code("model_manufacturer_mismatch", RULE, "Rule 2: the model is another manufacturer's."),
    Code("model_brand_mismatch", RULE, "Rule 2: the model is sold under another brand."),
    Code("ccc_expired", RULE, "Rule 2: the model's CCC certificate has expired."),
    Code("unknown_port", RULE, "Rule 3: the port is not a customs port of exit for vehicles."),
    Code("commodity_not_licensed", RULE, "Rule 3: the commodity code is not a licensed one."),
    Code("several_contracts", RULE, "Rule 3: an application covers one contract."),
    Code("several_trade_modes", RULE, "Rule 3: an application has one trade mode."),
    Code("no_after_sales_coverage", RULE, "Rule 4: no after-sales outlet in the destination."),
    Code(
        "zero_mileage_unconfirmed",
        RULE,
        "Rule 5: a recently registered 'used' vehicle lacks its manufacturer's after-sales confirmation.",
    ),
    Code(
        "registered_owner_not_applicant",
        RULE,
        "Rule 5: a recently registered vehicle is registered to another owner.",
    ),
    Code("zero_mileage_borderline", REVIEW, "Rule 5, escalated: just past the 180-day line; an officer checks."),
    Code("price_below_reference", REVIEW, "Rule 6, escalated: the unit price is far below the reference price."),
    Code("price_unverifiable", REVIEW, "Rule 6, escalated: no rate for the currency to compare the price."),
    Code("reference_price_missing", REVIEW, "Rule 6, escalated: no reference price is published for the model."),
    Code(
        "validity_out_of_range",
        RULE,
        "Rule 7: the validity is longer than six months, past 31 December, or starts in the past.",
    ),
    Code("next_year_not_open", REVIEW, "Rule 7: licenses for next year are issued from mid-December."),
    Code("license_year_not_open", REVIEW, "Rule 7: a license is for this year, or from mid-December the next."),
    # Officers.
    Code("quantity_above_application", ("officer",), "An officer grants at most the quantity applied for."),
    Code("quantity_above_license", ("officer",), "A successor carries at most the quantity licensed."),
    Code("used_batch_is_whole", ("officer",), "A used-vehicle license is one batch: granted or carried whole."),
    Code("already_decided", ("officer",), "409: an officer decided this escalation already, on other terms."),
    Code("application_unknown", ("officer",), "409: review does not know the application of the license's case."),
    Code("no_effect", ("officer", "applicant"), "409: the action's event changed nothing: another came first."),
    # Applicants, and the application's state for officers.
    *(
        Code(f"application_{status}", ("officer", "applicant"), f"409: the application is {status}.")
        for status in ApplicationStatus
    ),
    Code("application_not_returned", ("applicant",), "409: only a returned application can be resubmitted."),
    Code("applicant_changed", ("applicant",), "422: a corrected application keeps its applicant."),
    # Reference data.
    Code("reference_inconsistent", HTTP, "422: the change would leave the reference data inconsistent."),
    Code("brands_required", HTTP, "422: a new authorisation names the brands it covers."),
)


def document() -> str:
    """``docs/reason-codes.md``: every code, where it arises, what it means."""
    lines = [
        "# Reason codes",
        "",
        "Every refusal carries a stable `code` a program can act on, and a `message` a person can read. Over HTTP",
        'the body is `{"code", "message", "errors": [{"field"?, "code", "message"}]}`; on Kafka a dead',
        "letter carries `dlq.reason-code` and `dlq.reason`; the ledger's verdicts and review's decisions carry a",
        "`reason` (or `reasons`) with the same two fields. This page is generated from",
        "`shared/contract/reason_codes.py` (`licensectl docs`), which a test holds to the code: it lists every code",
        "the services give.",
        "",
        "Where a code arises:",
        "",
        *(f"- **{where}**: {meaning}" for where, meaning in WHERE.items()),
        "",
        "| code | where | meaning |",
        "| --- | --- | --- |",
        *(
            f"| `{c.code}` | {', '.join(c.where)} | {c.meaning.replace('|', '/')} |"
            for c in sorted(CATALOG.values(), key=lambda c: c.code)
        ),
        "",
    ]
    return "\n".join(lines)
