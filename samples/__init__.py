"""Fictional but well-formed sample input, matching the repo's reference data (version 2026.1): what the demo,
the tests and the benchmark send."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from shared.contract.events import Application, ExportDeclaration
from shared.platform.clock import china_today

QILIN_MOTOR = "91488787CL5R13E3HD"  # manufacturer, listed for 2026
HAITONG_EXPORT = "9130432708GW1D44MT"  # distributor authorised by Qilin Motor for Qilin and QiStar
BEILING_AUTO = "91284904EX3M8KGM2W"  # manufacturer whose 2026 listing is suspended
QILIN_MODEL = "QI7010BEV"  # brand Qilin, valid CCC
QILIN_EXPIRED_CCC_MODEL = "QI7012BEV"
# From reference data 2026.2 on (services/review/reference/generate.py fixes these rows):
QILIN_UNPRICED_MODEL = "QI7013BEV"  # listed with valid CCC, but no reference price published
QILIN_CONFIRMED_VIN = "LKMA7C1B9TS000042"  # Qilin Motor confirmed after-sales service for it in MX
QILIN_UNCOVERED_COUNTRY = "NZ"  # Qilin Motor has no after-sales outlet there


def application_data(**overrides: Any) -> dict[str, Any]:
    """A valid application as JSON data: 10 new Qilin BEVs from Qilin Motor to Mexico via Shenzhen."""
    data: dict[str, Any] = {
        "agency_code": "44",
        "applicant": {"code": QILIN_MOTOR, "name": "Qilin Motor Co., Ltd.", "role": "manufacturer"},
        "manufacturer": {"code": QILIN_MOTOR, "name": "Qilin Motor Co., Ltd."},
        "commodity_code": "8703801090",
        "model_code": QILIN_MODEL,
        "brand": "Qilin",
        "condition": "new",
        "quantity": 10,
        "unit_price": "147000.00",
        "currency": "CNY",
        "destination_country": "MX",
        "trade_mode": "general trade",
        "contract_number": "QM-2026-MX-0042",
        "port_of_exit": "CNSZX",
        "payment_mode": "letter of credit",
        "transport_mode": "ro-ro vessel",
    }
    data.update(overrides)
    return data


def application(**overrides: Any) -> Application:
    return Application.model_validate(application_data(**overrides))


def declaration_data(license_number: str, declaration_number: str, **overrides: Any) -> dict[str, Any]:
    """An export declaration of 4 vehicles at Shenzhen, dated inside a 2026 license's validity."""
    data: dict[str, Any] = {
        "declaration_number": declaration_number,
        "license_number": license_number,
        "port_of_exit": "CNSZX",
        "export_date": china_today().isoformat(),  # a license is valid from its grant's day in China
        "quantity": 4,
        "value": str(Decimal("147000.00") * 4),
        "currency": "CNY",
    }
    data.update(overrides)
    return data


def declaration(license_number: str, declaration_number: str, **overrides: Any) -> ExportDeclaration:
    return ExportDeclaration.model_validate(declaration_data(license_number, declaration_number, **overrides))


def used_vehicle_data(vin: str, first_registration: date, **overrides: Any) -> dict[str, Any]:
    """A used vehicle of Qilin Motor's, transferred for export a week after its first registration."""
    data: dict[str, Any] = {
        "vin": vin,
        "first_registration_date": first_registration.isoformat(),
        "registered_owner": QILIN_MOTOR,
        "transfer_date": (first_registration + timedelta(days=7)).isoformat(),
    }
    data.update(overrides)
    return data


def used_application(*vehicles: dict[str, Any], **overrides: Any) -> Application:
    """The sample application for these used vehicles (one each), at a used-car price."""
    data = {"condition": "used", "quantity": len(vehicles), "used_vehicles": list(vehicles), "unit_price": "98000.00"}
    return application(**{**data, **overrides})
